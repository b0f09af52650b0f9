import { randomUUID } from "node:crypto";

import { HttpRequest, type HttpResponseInit, InvocationContext } from "@azure/functions";
import fc from "fast-check";

import { createNotificationsApi } from "../../../shared/notifications/http-api";
import { parseNotificationRequest } from "../../../shared/notifications/schema";
import { WORK_KIND_PROPERTY } from "../../../shared/queue/queue-port";
import { NotificationsHarness } from "../../integration/notifications-harness";
import type { SimTeam, SimUser, TeamsActivity } from "../../simulator";
import { type BotHarness, startBotHarness } from "../../support/bot-harness";

/** One change to a JSON value: at the `at`-th path (modulo their number), delete or set. */
interface Mutation {
  readonly at: number;
  readonly action: "delete" | "set";
  readonly value: unknown;
}

/** Values that tend to break parsers: wrong types, empties, huge strings, look-alike ids. */
const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.constant(""),
  fc.constant(" "),
  fc.string(),
  fc.string({ minLength: 300, maxLength: 3_000 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant({}),
  fc.constant([]),
  fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
  fc.constantFrom("29:x", "19:abc@thread.tacv2", "28:bot", "msteams", "personal", "message"),
  fc.uuid(),
);

const mutations: fc.Arbitrary<Mutation[]> = fc.array(
  fc.record({
    at: fc.nat(),
    action: fc.constantFrom<Mutation["action"]>("delete", "set", "set"),
    value: oddValue,
  }),
  { minLength: 1, maxLength: 4 },
);

type Json = Record<string, unknown> | unknown[];

/** Every path into objects and arrays of `value` (the root excluded), depth first. */
function pathsOf(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (typeof value !== "object" || value === null) return [];
  const entries: [string | number, unknown][] = Array.isArray(value)
    ? value.map((v, i) => [i, v])
    : Object.entries(value);
  return entries.flatMap(([key, child]) => [[...prefix, key], ...pathsOf(child, [...prefix, key])]);
}

/** A deep copy of `base` with the mutations applied (JSON only, as it goes over the wire). */
export function mutate(base: unknown, changes: readonly Mutation[]): unknown {
  const copy = JSON.parse(JSON.stringify(base)) as unknown;
  for (const change of changes) {
    const paths = pathsOf(copy);
    if (paths.length === 0) return copy;
    const path = paths[change.at % paths.length]!;
    let parent = copy as Json;
    for (const key of path.slice(0, -1)) parent = (parent as Record<string | number, Json>)[key]!;
    const last = path[path.length - 1]!;
    if (change.action === "delete") {
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last as string];
    } else (parent as Record<string | number, unknown>)[last] = change.value;
  }
  return copy;
}

/**
 * Unhandled rejections: Jest's runner (jest-circus) puts its own `unhandledRejection` listener
 * on the real process while each test and hook runs and fails that test with the rejection.
 * A listener added here could not see them: each test file gets a copy of `process` whose
 * events the real one never emits to. `settle` gives stray promises time to reject inside
 * the test that caused them.
 */
const settle = () => new Promise<void>((done) => setTimeout(done, 50));

interface FieldErrorLike {
  path?: unknown;
  message?: unknown;
}

function namesFields(errors: unknown): boolean {
  return (
    Array.isArray(errors) &&
    errors.length > 0 &&
    errors.every(
      (e: FieldErrorLike) =>
        typeof e.path === "string" &&
        e.path !== "" &&
        typeof e.message === "string" &&
        e.message !== "",
    )
  );
}

/**
 * Property-based bad input for the three ways in: random and mutated activities at
 * `/api/messages`, random and mutated requests at the Service Bus handler and at
 * `POST /api/notifications`. Never a 500, never an unhandled rejection, every refusal with
 * its reason. `runs` per property (fast-check's numRuns).
 */
export function describeBadInput(runs: number): void {
  describe("POST /api/messages with random and mutated activities", () => {
    let h: BotHarness;
    let bases: TeamsActivity[];

    beforeAll(async () => {
      h = await startBotHarness();
      const [ada, bob, eve] = [h.sim.addUser(), h.sim.addUser(), h.sim.addUser()] as SimUser[];
      const team: SimTeam = h.sim.addTeam({ members: [ada!, bob!, eve!] });
      bases = [
        h.sim.activities.personalInstall(ada!),
        h.sim.activities.personalConversationUpdate(bob!),
        h.sim.activities.message(ada!, "hello"),
        h.sim.activities.personalUninstall(eve!),
        h.sim.activities.teamInstall(team, ada!),
        h.sim.activities.teamMembersAdded(team, [eve!]),
        h.sim.activities.teamMembersRemoved(team, [bob!]),
        h.sim.activities.botRemovedFromTeam(team),
        h.sim.activities.channelMention(team, ada!, [bob!], "the build is green"),
      ];
    });
    afterAll(async () => {
      await h.close();
    });

    /**
     * Mutations may turn the service URL into any URL; Herald would call it. Only the simulator
     * is a Teams service here (this machine may not reach anything else), so any http(s) URL
     * is pointed back at it: what is tested is everything else in the activity.
     */
    const confine = (activity: unknown): unknown => {
      if (typeof activity !== "object" || activity === null || Array.isArray(activity))
        return activity;
      const url = (activity as { serviceUrl?: unknown }).serviceUrl;
      if (typeof url === "string" && /^\s*https?:/i.test(url))
        return { ...activity, serviceUrl: h.sim.serviceUrl };
      return activity;
    };

    const expectRefusedWell = (answer: { status: number; body: unknown }, what: unknown) => {
      if (answer.status >= 500)
        throw new Error(`answered ${answer.status} to ${JSON.stringify(what).slice(0, 500)}`);
      if (answer.status === 400) {
        const error = (
          answer.body as { error?: { code?: unknown; message?: unknown; issues?: unknown } }
        ).error;
        expect(typeof error?.message).toBe("string");
        // A malformed activity names its fields; a body that is not JSON says so.
        if (error?.code !== "InvalidJson") expect(namesFields(error?.issues)).toBe(true);
      }
    };

    it("never answers 500 to a mutated Teams activity, and names the field when it refuses", async () => {
      await fc.assert(
        fc.asyncProperty(fc.nat(), mutations, async (which, changes) => {
          const activity = confine(mutate(bases[which % bases.length], changes));
          expectRefusedWell(await h.post(activity), activity);
        }),
        { numRuns: runs },
      );
      await settle();
    });

    it("never answers 500 to random JSON or random bytes", async () => {
      const body = fc.oneof(
        fc.jsonValue().map((v) => JSON.stringify(v)),
        fc.string(),
        fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString("latin1")),
      );
      await fc.assert(
        fc.asyncProperty(body, async (raw) => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(raw);
          } catch {
            parsed = undefined;
          }
          const confined = parsed === undefined ? raw : JSON.stringify(confine(parsed));
          expectRefusedWell(await h.post(undefined, { raw: confined }), confined);
        }),
        { numRuns: runs },
      );
      await settle();
    });
  });

  describe("the notifications queue handler and POST /api/notifications with bad requests", () => {
    let h: NotificationsHarness;
    let api: ReturnType<typeof createNotificationsApi>;
    let known: SimUser;

    beforeAll(async () => {
      // Wired as functions/*.ts wire it (shared/composition.ts).
      h = await NotificationsHarness.start();
      api = createNotificationsApi(() => h.services);
      known = h.sim.addUser();
      await h.seedUser(known);
    });
    afterAll(async () => {
      await h.close();
    });

    const validRequest = (): Record<string, unknown> =>
      h.request({
        recipients: [
          { aadObjectId: known.aadObjectId },
          { userPrincipalName: "nobody@contoso.example" },
        ],
        summary: "A notification",
        correlationId: `fuzz-${randomUUID().slice(0, 8)}`,
      });

    /** A usable id stays usable but unique, so one run's record is never another run's. */
    const freshId = (value: unknown): unknown => {
      if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
      const id = (value as { id?: unknown }).id;
      if (typeof id !== "string" || !/^[A-Za-z0-9]/.test(id)) return value;
      return { ...value, id: `${id.slice(0, 80)}-${randomUUID().slice(0, 8)}` };
    };

    const requestBody = fc.oneof(
      {
        weight: 3,
        arbitrary: mutations.map((changes) => freshId(mutate(validRequest(), changes))),
      },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map(freshId) },
    );

    /** The forms a Service Bus message body arrives in: parsed JSON, text, or bytes. */
    const asDelivered = (body: unknown, form: number): unknown =>
      form === 0
        ? body
        : form === 1
          ? JSON.stringify(body)
          : Buffer.from(JSON.stringify(body) ?? "");

    it("records every invalid queued request as rejected with the fields at fault, and never throws", async () => {
      await fc.assert(
        fc.asyncProperty(requestBody, fc.nat(2), async (body, form) => {
          const messageId = `msg-${randomUUID()}`;
          await h.deliver({ body: asDelivered(body, form), messageId });
          const parsed = parseNotificationRequest(body);
          const id = parsed.ok ? parsed.request.id : (parsed.id ?? messageId);
          const tenantId = (parsed.ok ? parsed.request.tenantId : parsed.tenantId) ?? "";
          const record = await h.requests.get({ tenantId, id });
          if (parsed.ok) {
            // Accepted: fanned out (its deliveries are queued), delivered inline (final: unknown
            // users end unreachable), or waiting for its notBefore.
            const status = await h.services.status.get(id, { tenantId });
            expect(
              record?.state === "dispatched" ||
                status?.final === true ||
                status?.state === "scheduled",
            ).toBe(true);
          } else {
            expect(record?.state).toBe("rejected");
            expect(namesFields(record?.errors)).toBe(true);
          }
        }),
        { numRuns: runs },
      );
      h.queue.takeAll();
      await settle();
    });

    it("drops malformed internal work items with a logged reason instead of retrying them forever", async () => {
      const work = fc.oneof(
        fc.jsonValue({ maxDepth: 2 }),
        mutations.map((changes) =>
          mutate(
            {
              requestId: `missing-${randomUUID()}`,
              tenantId: h.sim.tenantId,
              recipient: { aadObjectId: known.aadObjectId },
              attempt: 1,
            },
            changes,
          ),
        ),
      );
      await fc.assert(
        fc.asyncProperty(work, fc.constantFrom("delivery", "roster-sync"), async (body, kind) => {
          const before = h.logs.length;
          // Resolving = completed; a throw would mean redelivery until the dead-letter queue.
          await expect(
            h.deliver({ body, applicationProperties: { [WORK_KIND_PROPERTY]: kind } }),
          ).resolves.toBeUndefined();
          const lines = h.logs.slice(before).map((l) => l.text);
          if (lines.some((l) => /dropped/i.test(l)))
            expect(lines.some((l) => /errors|error/.test(l))).toBe(true);
        }),
        { numRuns: runs },
      );
      h.queue.takeAll();
      await settle();
    });

    it("answers POST /api/notifications with 202, 400 naming the fields, 409 or 413: never 500", async () => {
      const raw = fc.oneof(
        { weight: 3, arbitrary: requestBody.map((b) => JSON.stringify(b) ?? "") },
        { weight: 1, arbitrary: fc.string() },
      );
      await fc.assert(
        fc.asyncProperty(raw, async (text) => {
          const request = new HttpRequest({
            method: "POST",
            url: "https://herald.example/api/notifications",
            headers: { "content-type": "application/json" },
            body: { string: text },
          });
          const response: HttpResponseInit = await api.enqueue(
            request,
            new InvocationContext({ logHandler: () => undefined }),
          );
          let parsed: unknown;
          let isJson = true;
          try {
            parsed = JSON.parse(text);
          } catch {
            isJson = false;
          }
          const valid = isJson && parseNotificationRequest(parsed).ok;
          expect([202, 400, 409, 413]).toContain(response.status);
          // 409: fast-check's shrinking may send another body under an id it already used.
          if (valid) expect([202, 409]).toContain(response.status);
          else {
            expect(response.status).toBe(400);
            expect(namesFields((response.jsonBody as { errors?: unknown }).errors)).toBe(true);
          }
        }),
        { numRuns: runs },
      );
      h.queue.takeAll();
      await settle();
    });
  });
}
