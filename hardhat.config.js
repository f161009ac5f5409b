// Hardhat 2: compiles contracts/ offline with the npm solc that scripts/compile.js uses, with
// the same settings (so the bytecode, metadata hash included, equals the committed artifact
// agents/artifacts/CollectiveLearning.json), and runs a local chain (`npx hardhat node`,
// chain id 31337).
//
// COLEARN_HARDHAT_OUT=DIR puts Hardhat's cache and artifacts under DIR instead of ./cache and
// ./artifacts (the tests use it to leave the working tree clean).
"use strict";
const path = require("path");
const { subtask } = require("hardhat/config");
const {
  TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD,
  TASK_COMPILE_SOLIDITY_GET_SOURCE_PATHS,
} = require("hardhat/builtin-tasks/task-names");
const { SETTINGS, BENCH_DIR, TEST_DIR } = require("./scripts/compile.js");

const SOLC_VERSION = require("solc/package.json").version;

// Never download a compiler: use node_modules/solc (solcjs, wasm) for the pinned version.
subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async ({ solcVersion }, _hre, runSuper) => {
  if (solcVersion !== SOLC_VERSION) return runSuper();
  const solc = require("solc"); // loaded only when compiling
  return {
    compilerPath: require.resolve("solc/soljson.js"),
    isSolcJs: true,
    version: SOLC_VERSION,
    longVersion: solc.version(),
  };
});

// contracts/bench/ holds test-only contracts (OpenZeppelin's Governor for `colearn bench
// gas`) that scripts/compile.js compiles on their own, and contracts/test/ Foundry's tests
// (`make forge-test`): leave both out, so Hardhat compiles the contract with exactly the
// sources of its committed standard-JSON input.
subtask(TASK_COMPILE_SOLIDITY_GET_SOURCE_PATHS, async (args, _hre, runSuper) => {
  const skipped = [BENCH_DIR, TEST_DIR].map((dir) => path.join(__dirname, dir) + path.sep);
  return (await runSuper(args)).filter((file) => !skipped.some((dir) => file.startsWith(dir)));
});

const out = process.env.COLEARN_HARDHAT_OUT;

/** @type import('hardhat/config').HardhatUserConfig */
module.exports = {
  solidity: {
    // Hardhat adds its own outputSelection entries to (and fills defaults into) the object
    // it is given: hand it a copy so SETTINGS stays what scripts/compile.js uses.
    compilers: [{ version: SOLC_VERSION, settings: structuredClone(SETTINGS) }],
  },
  paths: {
    sources: "./contracts",
    ...(out ? { cache: path.resolve(out, "cache"), artifacts: path.resolve(out, "artifacts") } : {}),
  },
  networks: {
    hardhat: { chainId: 31337 },
  },
};
