import type * as Registry from "../../shared/registry";

/**
 * Outside the Functions host (`npm start`, these tests) @azure/functions skips registering and
 * says so with console.warn; Herald's registry keeps the registrations, and the notices are
 * recognised (so `npm start` and the test setup leave them out of what a person reads).
 */
describe("function registration outside the Functions host", () => {
  it("keeps every registration while @azure/functions prints only its test-mode notices, which Herald recognises", () => {
    const printed = jest.spyOn(console, "warn").mockImplementation(() => undefined);
    let registry!: typeof Registry;
    let notices!: unknown[];
    try {
      jest.isolateModules(() => {
        /* eslint-disable @typescript-eslint/no-require-imports -- loaded as the host loads function files */
        require("../../functions/notifications-api");
        registry = require("../../shared/registry") as typeof Registry;
        /* eslint-enable @typescript-eslint/no-require-imports */
      });
      notices = printed.mock.calls.map((call) => call[0] as unknown);
    } finally {
      printed.mockRestore();
    }
    expect(registry.registeredFunctions().map((r) => r.name)).toEqual([
      "notifications-enqueue",
      "notifications-status",
      "notifications-update",
      "notifications-recall",
      "notifications-update-recipient",
      "notifications-events",
    ]);
    expect(notices).toEqual([
      expect.stringMatching(/^WARNING: Failed to detect the Azure Functions runtime/),
      expect.stringMatching(/^WARNING: Skipping call to register function "notifications-enqueue"/),
      expect.stringMatching(/^WARNING: Skipping call to register function "notifications-status"/),
      expect.stringMatching(/^WARNING: Skipping call to register function "notifications-update"/),
      expect.stringMatching(/^WARNING: Skipping call to register function "notifications-recall"/),
      expect.stringMatching(
        /^WARNING: Skipping call to register function "notifications-update-recipient"/,
      ),
      expect.stringMatching(/^WARNING: Skipping call to register function "notifications-events"/),
    ]);
    expect(notices.every((n) => registry.isOutsideHostNotice(n))).toBe(true);
    expect(registry.isOutsideHostNotice("WARNING: something else")).toBe(false);
  });
});
