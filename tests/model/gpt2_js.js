// gpt2_js.js: encodes (or decodes) a file with the npm package
// gpt-3-encoder, OpenAI's GPT-2 encoder in JavaScript.
//   node gpt2_js.js MODULE_DIR encode FILE   -> ids, space-separated
//   node gpt2_js.js MODULE_DIR time FILE     -> seconds to encode FILE
// The encoder's output array grows by concatenation (quadratic in the text),
// so long texts are fed in pieces cut before a space that follows a
// non-space: no match of GPT-2's pre-tokenizer regex crosses such a cut.
const enc = require(process.argv[2]);
const fs = require('fs');
const text = fs.readFileSync(process.argv[4], 'utf8');
const PIECE = 4096;

function encodeAll(t) {
  const out = [];
  let start = 0;
  while (start < t.length) {
    let end = Math.min(start + PIECE, t.length);
    if (end < t.length) {
      let i = end;
      while (i > start + 1 && !(t[i] === ' ' && !/\s/u.test(t[i - 1]))) i--;
      if (i <= start + 1) { // none before: the next one after
        i = end;
        while (i < t.length && !(t[i] === ' ' && !/\s/u.test(t[i - 1]))) i++;
      }
      end = i;
    }
    const ids = enc.encode(t.slice(start, end));
    for (const id of ids) out.push(id);
    start = end;
  }
  return out;
}

if (process.argv[3] === 'encode') {
  process.stdout.write(encodeAll(text).join(' ') + '\n');
} else if (process.argv[3] === 'time') {
  const t0 = process.hrtime.bigint();
  const ids = encodeAll(text);
  const t1 = process.hrtime.bigint();
  process.stdout.write((Number(t1 - t0) / 1e9) + ' ' + ids.length + '\n');
}
