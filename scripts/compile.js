#!/usr/bin/env node
// Compiles contracts/*.sol with the pinned npm solc and pinned settings, and writes the
// artifact that ships in the Python package (ABI, bytecode, standard-JSON input, metadata).
// Usage: node scripts/compile.js [OUT_DIR]   (default: agents/artifacts)
// hardhat.config.js requires this module for SETTINGS, so both compile alike.
"use strict";
const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const CONTRACTS = ["CollectiveLearning"];
// Pinned: changing any of these changes the bytecode; the artifact test catches drift.
const SETTINGS = {
  evmVersion: "cancun",
  viaIR: true,
  optimizer: { enabled: true, runs: 10000 },
  metadata: { bytecodeHash: "ipfs" },
  outputSelection: {
    "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata"] },
  },
};

function main() {
  const solc = require("solc"); // loaded here: requiring this module for SETTINGS stays cheap
  const outDir = path.resolve(process.argv[2] || path.join(ROOT, "agents", "artifacts"));
  const sources = {};
  for (const name of CONTRACTS) {
    const rel = `contracts/${name}.sol`;
    sources[rel] = { content: fs.readFileSync(path.join(ROOT, rel), "utf8") };
  }
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) process.stderr.write(e.formattedMessage + "\n");
  if (errors.length) process.exit(1);

  fs.mkdirSync(outDir, { recursive: true });
  for (const name of CONTRACTS) {
    const c = output.contracts[`contracts/${name}.sol`][name];
    const artifact = {
      contractName: name,
      sourceName: `contracts/${name}.sol`,
      compiler: { name: "solc", version: solc.version() },
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
      metadata: c.metadata,
      standardJsonInput: input,
    };
    fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
    process.stdout.write(`${name}: ${c.evm.deployedBytecode.object.length / 2} bytes runtime -> ${outDir}\n`);
  }
}

module.exports = { SETTINGS, CONTRACTS };

if (require.main === module) main();
