#!/usr/bin/env node
// Acts as a native `solc` binary for Foundry's forge (foundry.toml: solc = this file), with
// npm's solc (solcjs, wasm): there is no native solc on any registry this project reaches.
// forge asks for two things only: `solc --version` and `solc --standard-json` (input on
// stdin, output on stdout). Settings come from forge's input (foundry.toml), which mirrors
// scripts/compile.js: via-IR, cancun, 10000 runs, the @openzeppelin/ remapping.
"use strict";
const fs = require("fs");
const path = require("path");

const solc = require(path.join(__dirname, "..", "node_modules", "solc"));
const args = process.argv.slice(2);

if (args.includes("--version")) {
  // forge parses "Version: X.Y.Z+commit.HASH.Platform".
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version().replace(".Emscripten.clang", ".Linux.g++")}\n`);
  process.exit(0);
}
if (!args.includes("--standard-json")) {
  process.stderr.write("solc-forge.js: only --version and --standard-json are supported\n");
  process.exit(2);
}

// forge passes --allow-paths / --base-path; the input already carries every source forge
// resolved, so imports are only a fallback (read from disk relative to the base path).
const baseIndex = args.indexOf("--base-path");
const base = baseIndex >= 0 ? args[baseIndex + 1] : process.cwd();
const findImports = (unit) => {
  for (const candidate of [path.resolve(base, unit), path.resolve(unit)]) {
    if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, "utf8") };
  }
  return { error: `not found: ${unit}` };
};

const input = fs.readFileSync(0, "utf8");
const output = solc.compile(input, { import: findImports });
// No process.exit: Node drains stdout (a pipe may take several writes) before it exits.
process.stdout.write(output);
