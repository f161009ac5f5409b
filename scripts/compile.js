#!/usr/bin/env node
// Compiles contracts/*.sol with the pinned npm solc and pinned settings, and writes the
// artifact that ships in the Python package (ABI, bytecode, standard-JSON input, metadata).
// Also compiles the test-only contracts in contracts/bench/ (`colearn bench gas` deploys
// them) into one compact artifact per source file: ABI and creation bytecode of each
// contract, and the keccak256 of every source unit (no standard-JSON input: they are never
// verified on chain).
// Usage: node scripts/compile.js [OUT_DIR]   (default: agents/artifacts)
// hardhat.config.js requires this module for SETTINGS, so both compile alike.
"use strict";
const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const CONTRACTS = ["CollectiveLearning"];
const BENCH_DIR = "contracts/bench";
// Foundry's tests (`make forge-test`), never part of a shipped artifact.
const TEST_DIR = "contracts/test";
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
  fs.mkdirSync(outDir, { recursive: true });

  // One compilation per group, so the contract's standard-JSON input holds its own
  // sources only (the bench contracts never change its artifact).
  const { input, output } = compile(solc, CONTRACTS.map((name) => `contracts/${name}.sol`));
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
    writeArtifact(outDir, name, JSON.stringify(artifact, null, 2), c);
  }

  const benchDir = path.join(ROOT, BENCH_DIR);
  const benchFiles = fs.existsSync(benchDir)
    ? fs.readdirSync(benchDir).filter((f) => f.endsWith(".sol")).sort()
    : [];
  for (const file of benchFiles) {
    const sourceName = `${BENCH_DIR}/${file}`;
    const bench = compile(solc, [sourceName]).output;
    const contracts = bench.contracts[sourceName];
    const names = Object.keys(contracts).sort();
    // Every source unit compiled, by keccak256 (from the metadata of any contract in it,
    // merged: each lists the units it depends on).
    const sources = {};
    for (const name of names) {
      for (const [unit, entry] of Object.entries(JSON.parse(contracts[name].metadata).sources)) {
        sources[unit] = entry.keccak256;
      }
    }
    const artifact = {
      sourceName,
      compiler: { name: "solc", version: solc.version() },
      settings: SETTINGS,
      sources: sortedByName(sources),
      contracts: Object.fromEntries(names.map((name) => [name, {
        abi: contracts[name].abi,
        bytecode: "0x" + contracts[name].evm.bytecode.object,
      }])),
    };
    const base = path.basename(file, ".sol");
    writeArtifact(outDir, base, JSON.stringify(artifact), ...names.map((n) => contracts[n]));
  }
}

/** Compiles the source files `entries` (paths from the repository root) in one input. */
function compile(solc, entries) {
  const sources = {};
  for (const rel of entries) {
    sources[rel] = { content: fs.readFileSync(path.join(ROOT, rel), "utf8") };
  }
  // Imports (OpenZeppelin) resolve from node_modules under their npm names, as Hardhat
  // names them, the project's from the repository root; every source read goes into the standard-JSON input, so the artifact
  // alone lets a verifier (Sourcify, Etherscan) rebuild the bytecode.
  // The project's own sources (contracts/ICollectiveLearning.sol) resolve from the root.
  const findImports = (unit) => {
    const file = unit.startsWith("contracts/") ? path.join(ROOT, unit) : path.join(ROOT, "node_modules", unit);
    if (!(unit.startsWith("@") || unit.startsWith("contracts/")) || !fs.existsSync(file)) {
      return { error: `not found: ${unit}` };
    }
    sources[unit] = { content: fs.readFileSync(file, "utf8") };
    return { contents: sources[unit].content };
  };
  solc.compile(JSON.stringify({ language: "Solidity", sources: { ...sources }, settings: SETTINGS }), {
    import: findImports,
  });
  const input = { language: "Solidity", sources: sortedByName(sources), settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  // Warnings about npm packages' own code (OpenZeppelin's, which the bench contracts pull
  // in) are theirs to fix: counted, not printed.
  const theirs = (e) => e.severity !== "error" && (e.sourceLocation?.file || "").startsWith("@");
  for (const e of output.errors || []) if (!theirs(e)) process.stderr.write(e.formattedMessage + "\n");
  const skipped = (output.errors || []).filter(theirs).length;
  if (skipped) process.stderr.write(`${entries.join(", ")}: ${skipped} warnings in npm packages\n`);
  if (errors.length) process.exit(1);
  return { input, output };
}

function writeArtifact(outDir, name, text, ...compiled) {
  fs.writeFileSync(path.join(outDir, `${name}.json`), text + "\n");
  const runtime = compiled.map((c) => c.evm.deployedBytecode.object.length / 2).join(" + ");
  process.stdout.write(`${name}: ${runtime} bytes runtime -> ${outDir}\n`);
}

function sortedByName(sources) {
  return Object.fromEntries(Object.keys(sources).sort().map((k) => [k, sources[k]]));
}

module.exports = { SETTINGS, CONTRACTS, BENCH_DIR, TEST_DIR };

if (require.main === module) main();
