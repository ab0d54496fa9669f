// Reference outputs of face-api's expression network, computed by TensorFlow.js itself with
// the ops face-api's TypeScript uses (conv2d / separableConv2d "same", avgPool 7x7 stride 2,
// fully connected, softmax), to check ferkit's PyTorch rebuild against.
//
// Usage: NODE_PATH=DIR/node_modules node tools/faceapi_reference.mjs MANIFEST INPUT.json OUT.json
//   (DIR holds `npm install @tensorflow/tfjs@4.22.0`; INPUT.json: {"shape": [N, 112, 112, 3],
//    "data": [...]} already normalised as face-api does: (RGB - mean) / 255)
import { createRequire } from "module";
import fs from "fs";
import path from "path";

const require = createRequire(import.meta.url);
const tf = require("@tensorflow/tfjs");

const [manifestPath, inputPath, outPath] = process.argv.slice(2);
const manifest = JSON.parse(fs.readFileSync(manifestPath, "utf8"));
const weights = {};
for (const group of manifest) {
  const buffers = group.paths.map((p) => fs.readFileSync(path.join(path.dirname(manifestPath), p)));
  const all = Buffer.concat(buffers);
  const arrayBuffer = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  Object.assign(weights, tf.io.decodeWeights(arrayBuffer, group.weights));
}

function sep(x, name, stride) {
  const out = tf.separableConv2d(x, weights[`${name}/depthwise_filter`], weights[`${name}/pointwise_filter`], stride, "same");
  return tf.add(out, weights[`${name}/bias`]);
}

function dense(x, block, first) {
  const out1 = tf.relu(
    first
      ? tf.add(tf.conv2d(x, weights[`${block}/conv0/filters`], [2, 2], "same"), weights[`${block}/conv0/bias`])
      : sep(x, `${block}/conv0`, [2, 2]),
  );
  const out2 = sep(out1, `${block}/conv1`, [1, 1]);
  const out3 = sep(tf.relu(tf.add(out1, out2)), `${block}/conv2`, [1, 1]);
  const out4 = sep(tf.relu(tf.add(out1, tf.add(out2, out3))), `${block}/conv3`, [1, 1]);
  return tf.relu(tf.add(out1, tf.add(out2, tf.add(out3, out4))));
}

const input = JSON.parse(fs.readFileSync(inputPath, "utf8"));
let x = tf.tensor4d(input.data, input.shape);
x = dense(x, "dense0", true);
x = dense(x, "dense1", false);
x = dense(x, "dense2", false);
x = dense(x, "dense3", false);
x = tf.avgPool(x, [7, 7], [2, 2], "valid");
const logits = tf.add(tf.matMul(x.reshape([x.shape[0], -1]), weights["fc/weights"]), weights["fc/bias"]);
const probs = tf.softmax(logits);
fs.writeFileSync(outPath, JSON.stringify({ shape: probs.shape, data: Array.from(probs.dataSync()) }));
