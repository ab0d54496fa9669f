// TensorFlow.js's own outputs for a model.json, the reference ferkit's TF.js importer checks
// its ONNX conversion against. Needs node and @tensorflow/tfjs (pure JS, CPU backend).
//
// Usage: NODE_PATH=DIR/node_modules node tfjs_reference.mjs MODEL.json INPUT.bin SHAPE OUTDIR [OUTPUT ...]
//   INPUT.bin: float32 little-endian values; SHAPE: comma-separated dims (NHWC);
//   OUTPUT: graph-model node names to fetch (default: the model's outputs).
//   Writes OUTDIR/out_K.bin (float32) and OUTDIR/outputs.json ([{"shape": [...]}, ...]).
import { createRequire } from "module";
import fs from "fs";
import path from "path";

const require = createRequire(import.meta.url);
const tf = require("@tensorflow/tfjs");

const [modelPath, inputPath, shapeText, outDir, ...outputNames] = process.argv.slice(2);
const data = JSON.parse(fs.readFileSync(modelPath, "utf8"));
const specs = [];
const buffers = [];
for (const group of data.weightsManifest) {
  specs.push(...group.weights);
  for (const p of group.paths) buffers.push(fs.readFileSync(path.join(path.dirname(modelPath), p)));
}
const all = Buffer.concat(buffers);
const artifacts = {
  modelTopology: data.modelTopology,
  format: data.format,
  generatedBy: data.generatedBy,
  convertedBy: data.convertedBy,
  signature: data.signature,
  userDefinedMetadata: data.userDefinedMetadata,
  weightSpecs: specs,
  weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
};
const handler = { load: async () => artifacts };
const isGraph = data.format === "graph-model" || "node" in data.modelTopology;

const shape = shapeText.split(",").map(Number);
const raw = fs.readFileSync(inputPath);
const input = tf.tensor(new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4), shape, "float32");
let out;
if (isGraph) {
  const model = await tf.loadGraphModel(handler);
  out = outputNames.length ? model.execute(input, outputNames) : model.execute(input);
} else {
  const model = await tf.loadLayersModel(handler);
  out = model.predict(input);
}
const list = Array.isArray(out) ? out : [out];
const shapes = [];
list.forEach((t, k) => {
  const values = t.dataSync();
  fs.writeFileSync(path.join(outDir, `out_${k}.bin`), Buffer.from(new Float32Array(values).buffer));
  shapes.push({ shape: t.shape });
});
fs.writeFileSync(path.join(outDir, "outputs.json"), JSON.stringify(shapes));
