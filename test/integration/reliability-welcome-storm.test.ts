import { runWelcomeStorm } from "../chaos/scenarios/welcome-storm";

/** Short welcome storms; `npm run test:chaos` runs 200 users on 4 instances, 3 times over. */
describe("welcomes in a storm of install events", () => {
  it("sends exactly 100 welcomes to 100 users when install, conversationUpdate and a message hit 3 instances at once, twice", async () => {
    const report = await runWelcomeStorm({ users: 100, instances: 3, rounds: 2, seed: 2 });
    expect(report.statuses).toEqual({ 200: 600 });
    expect(report.welcomes).toBe(100);
    expect(report.withoutWelcome).toBe(0);
    expect(report.withSeveral).toBe(0);
    expect(report.ledgerSent).toBe(100);
  }, 30_000);

  it("still sends exactly one welcome each when some welcome sends fail during the storm", async () => {
    const report = await runWelcomeStorm({
      users: 40,
      instances: 3,
      rounds: 1,
      seed: 3,
      sendFaultRate: 0.15,
    });
    expect(report.statuses).toEqual({ 200: report.activitiesPosted });
    expect(report.welcomes).toBe(40);
    expect(report.withoutWelcome).toBe(0);
    expect(report.withSeveral).toBe(0);
    expect(report.ledgerSent).toBe(40);
    expect(report.sendFaultsInjected).toBeGreaterThan(0);
  }, 30_000);
});
