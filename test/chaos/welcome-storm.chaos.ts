import { runWelcomeStorm } from "./scenarios/welcome-storm";
import { report } from "./support/report";

describe("welcomes in a storm of install events", () => {
  it("sends exactly 200 welcomes to 200 users whose events hit 4 instances at once, 3 times over", async () => {
    const result = await runWelcomeStorm({ users: 200, instances: 4, rounds: 3, seed: 2026 });
    report("welcome-storm", { ...result });
    expect(result.statuses).toEqual({ 200: result.activitiesPosted });
    expect(result.welcomes).toBe(200);
    expect(result.withoutWelcome).toBe(0);
    expect(result.withSeveral).toBe(0);
    expect(result.ledgerSent).toBe(200);
  });

  it("still sends exactly one welcome each when 10 % of the welcome sends fail during the storm", async () => {
    const result = await runWelcomeStorm({
      users: 200,
      instances: 4,
      rounds: 2,
      seed: 7,
      sendFaultRate: 0.1,
    });
    report("welcome-storm with send faults", { ...result });
    expect(result.statuses).toEqual({ 200: result.activitiesPosted });
    expect(result.welcomes).toBe(200);
    expect(result.withoutWelcome).toBe(0);
    expect(result.withSeveral).toBe(0);
    expect(result.ledgerSent).toBe(200);
    expect(result.sendFaultsInjected).toBeGreaterThan(0);
  });
});
