/**
 * `npm run test:chaos`: the long reliability suite (test/chaos/*.chaos.ts). `npm test` runs the
 * short versions (test/integration/reliability-*.test.ts) and never these files.
 * @type {import('jest').Config}
 */
module.exports = {
  rootDir: "../..",
  testEnvironment: "node",
  roots: ["<rootDir>/test/chaos"],
  testMatch: ["**/*.chaos.ts"],
  transform: {
    "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json" }],
  },
  globalSetup: "<rootDir>/test/global-setup.ts",
  globalTeardown: "<rootDir>/test/global-teardown.ts",
  testTimeout: 15 * 60_000,
  // One scenario at a time: each one loads both cores on its own.
  maxWorkers: 1,
};
