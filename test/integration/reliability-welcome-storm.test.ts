import { runWelcomeStorm } from "../chaos/scenarios/welcome-storm";

/** Short welcome storms; `npm run test:chaos` runs 200 users on 4 instances, 3 times over. */
describe("welcomes in a storm of install events", () => {
  // Every user's three events reach three instances at once, so the race this guards is there at
  // any size; 30 users (180 activities at once) is CPU work that stays well inside the test
  // timeout on a 2-core machine under heavy load (60 took 10-36 s). The chaos suite's storm is
  // the large one.
  it("sends exactly 30 welcomes to 30 users when install, conversationUpdate and a message hit 3 instances at once, twice", async () => {
    const report = await runWelcomeStorm({ users: 30, instances: 3, rounds: 2, seed: 2 });
    expect(report.statuses).toEqual({ 200: 180 });
    expect(report.welcomes).toBe(30);
    expect(report.withoutWelcome).toBe(0);
    expect(report.withSeveral).toBe(0);
    expect(report.ledgerSent).toBe(30);
  }, 30_000);

  it("still sends exactly one welcome each when some welcome sends fail during the storm", async () => {
    const report = await runWelcomeStorm({
      users: 25,
      instances: 3,
      rounds: 1,
      seed: 3,
      sendFaultRate: 0.15,
    });
    expect(report.statuses).toEqual({ 200: report.activitiesPosted });
    expect(report.welcomes).toBe(25);
    expect(report.withoutWelcome).toBe(0);
    expect(report.withSeveral).toBe(0);
    expect(report.ledgerSent).toBe(25);
    expect(report.sendFaultsInjected).toBeGreaterThan(0);
  }, 30_000);
});
