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
    "*": {
      "*": [
        "abi",
        "evm.bytecode.object",
        "evm.deployedBytecode.object",
        "evm.deployedBytecode.immutableReferences",
        "metadata",
      ],
    },
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
  // Imports (OpenZeppelin) resolve from node_modules under their npm names, as Hardhat
  // names them; every source read goes into the standard-JSON input, so the artifact
  // alone lets a verifier (Sourcify, Etherscan) rebuild the bytecode.
  const findImports = (unit) => {
    const file = path.join(ROOT, "node_modules", unit);
    if (!unit.startsWith("@") || !fs.existsSync(file)) return { error: `not found: ${unit}` };
    sources[unit] = { content: fs.readFileSync(file, "utf8") };
    return { contents: sources[unit].content };
  };
  solc.compile(JSON.stringify({ language: "Solidity", sources: { ...sources }, settings: SETTINGS }), {
    import: findImports,
  });
  const input = { language: "Solidity", sources: sortedByName(sources), settings: SETTINGS };
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
      // Byte ranges of the runtime code that the constructor fills in (EIP-712's cached
      // domain): zeros here, set in the deployed code.
      immutableReferences: c.evm.deployedBytecode.immutableReferences,
      metadata: c.metadata,
      standardJsonInput: input,
    };
    fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
    process.stdout.write(`${name}: ${c.evm.deployedBytecode.object.length / 2} bytes runtime -> ${outDir}\n`);
  }
}

function sortedByName(sources) {
  return Object.fromEntries(Object.keys(sources).sort().map((k) => [k, sources[k]]));
}

module.exports = { SETTINGS, CONTRACTS };

if (require.main === module) main();
