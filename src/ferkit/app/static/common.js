// Shared drawing helpers for the ferkit pages (no external libraries).
const COLORS = { angry: "#dc322f", disgust: "#859900", fear: "#6c71c4", happy: "#ffc107", sad: "#268bd2",
  surprise: "#d33682", neutral: "#93a1a1", contempt: "#cb4b16" };
const colorOf = (label) => COLORS[label] || "#2aa198";

// mirrorWidth: the boxes belong to an image drawn mirrored (a selfie view) that is this wide.
function drawFaces(ctx, faces, scale = 1, mirrorWidth = 0) {
  ctx.lineWidth = Math.max(2, 3 * scale);
  ctx.font = `${Math.max(14, 18 * scale)}px system-ui, sans-serif`;
  for (const f of faces) {
    const [bx, y, w, h] = f.box;
    const x = mirrorWidth ? mirrorWidth - bx - w : bx;
    const color = colorOf(f.label);
    const text = `${f.label} ${Math.round(100 * f.probs[f.label])}%`;
    ctx.strokeStyle = color;
    ctx.strokeRect(x, y, w, h);
    const tw = ctx.measureText(text).width + 8;
    const th = Math.max(18, 22 * scale);
    ctx.fillStyle = color;
    ctx.fillRect(x, Math.max(0, y - th), tw, th);
    ctx.fillStyle = "#000";
    ctx.fillText(text, x + 4, Math.max(th - 5, y - 5));
  }
}

function barsHtml(probs) {
  return Object.entries(probs).sort((a, b) => b[1] - a[1]).map(([k, v]) =>
    `<div class="bar"><span>${k}</span><div class="track"><div class="fill" style="width:${(100 * v).toFixed(1)}%;background:${colorOf(k)}"></div></div><span>${(100 * v).toFixed(0)}%</span></div>`
  ).join("");
}
