#!/usr/bin/env node
// Compiles one test-only contract with the project's pinned npm solc and settings
// (scripts/compile.js's SETTINGS) and prints {"abi", "bytecode"} of CONTRACT as JSON on
// stdout. Test contracts are never shipped or verified: nothing is written to disk.
// Usage: node tests/audit/contracts/compile.js FILE.sol CONTRACT
"use strict";
const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..", "..", "..");
const { SETTINGS } = require(path.join(ROOT, "scripts", "compile.js"));
const solc = require(path.join(ROOT, "node_modules", "solc"));

const [file, name] = process.argv.slice(2);
const source = path.relative(ROOT, path.resolve(file));
const input = {
  language: "Solidity",
  sources: { [source]: { content: fs.readFileSync(path.join(ROOT, source), "utf8") } },
  settings: { ...SETTINGS, outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } } },
};
// Imports resolve from the repository (contracts/ICollectiveLearning.sol), then node_modules.
function findImports(name) {
  for (const base of [ROOT, path.join(ROOT, "node_modules")]) {
    const file = path.join(base, name);
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, "utf8") };
  }
  return { error: `not found: ${name}` };
}
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) process.stderr.write(e.formattedMessage + "\n");
if (errors.length) process.exit(1);
const compiled = output.contracts[source][name];
if (!compiled) {
  process.stderr.write(`no contract ${name} in ${source}\n`);
  process.exit(1);
}
process.stdout.write(JSON.stringify({ abi: compiled.abi, bytecode: "0x" + compiled.evm.bytecode.object }));
