/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test", "<rootDir>/shared", "<rootDir>/functions"],
  testMatch: ["**/*.test.ts"],
  transform: {
    "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json" }],
  },
  globalSetup: "<rootDir>/test/global-setup.ts",
  setupFiles: ["<rootDir>/test/support/quiet-registration.ts"],
  globalTeardown: "<rootDir>/test/global-teardown.ts",
  testTimeout: 30000,
  // Two cores on CI: more workers than that only adds contention for Azurite.
  maxWorkers: 2,
};
