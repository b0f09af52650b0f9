import { describeBadInput } from "../chaos/scenarios/bad-input";

// 100 runs per property here; `npm run test:chaos` runs 1,000 (test/chaos/bad-input.chaos.ts).
describeBadInput(100);
