import { describeBadInput } from "./scenarios/bad-input";

// 1,000 runs per property (npm test runs 100: test/integration/reliability-bad-input.test.ts).
describeBadInput(Number(process.env.HERALD_CHAOS_RUNS ?? 1_000));
