import { startTeamsSimulator } from "../simulator";
import { startGraphSimulator } from "./simulator";

/**
 * `npm run graph-sim`: a loopback stand-in for Microsoft Graph and Teams, to try proactive
 * install with `npm start` (README, "Reach people who never opened the bot"). Graph knows a few
 * people Herald has never seen and a group; installing the app for one of them makes Teams (the
 * Teams simulator) post the install's events to Herald's endpoint, and the simulator's 1:1
 * chats receive what Herald sends, printed here as it lands.
 */

/** A tenant of its own, so nothing the Agents Playground recorded locally gets in the way. */
const TENANT_ID = process.env.GRAPH_SIM_TENANT_ID?.trim() || "5e2c7a9d-3b1f-4c8e-a6d4-9f0b2e7c1a35";
/** The manifest id Herald's `TeamsAppId` names (any GUID: it only has to match). */
const TEAMS_APP_ID = process.env.TeamsAppId?.trim() || "0f4e8d2a-6c1b-4a9e-8f3d-7b5c2e1a9d60";
const GRAPH_PORT = Number(process.env.GRAPH_SIM_PORT?.trim() || "7072");
const TEAMS_PORT = Number(process.env.TEAMS_SIM_PORT?.trim() || "7073");
const BOT_ENDPOINT =
  process.env.HERALD_BOT_ENDPOINT?.trim() ||
  `http://127.0.0.1:${process.env.PORT?.trim() || "7071"}/api/messages`;

const PEOPLE = [
  { name: "Adele Vance", upn: "adele.vance@contoso.com" },
  { name: "Alex Wilber", upn: "alex.wilber@contoso.com" },
  { name: "Megan Bowen", upn: "megan.bowen@contoso.com" },
];

async function main(): Promise<void> {
  const teams = await startTeamsSimulator({ tenantId: TENANT_ID, port: TEAMS_PORT });
  const graph = await startGraphSimulator({
    teams,
    botEndpoint: BOT_ENDPOINT,
    installActivities: "immediate",
    enforceRateLimits: true,
    port: GRAPH_PORT,
  });
  graph.publishApp({ externalId: TEAMS_APP_ID, displayName: "Herald" });
  const people = PEOPLE.map((p) =>
    graph.addUser({ displayName: p.name, userPrincipalName: p.upn }),
  );
  const guest = graph.addUser({
    displayName: "Guest Contractor",
    userPrincipalName: "contractor_fabrikam.com#EXT#@contoso.onmicrosoft.com",
    userType: "Guest",
  });
  const group = graph.addGroup({
    id: "3b9e2f1c-7d4a-4e8b-9c6f-1a2d3e4f5a6b",
    displayName: "Sales",
    members: [...people, guest],
  });

  console.log(`Graph stand-in  ${graph.endpoint}   (app ${TEAMS_APP_ID} published in the catalog)`);
  console.log(`Teams stand-in  ${teams.serviceUrl}   (install events go to ${BOT_ENDPOINT})`);
  console.log(`Tenant          ${TENANT_ID}`);
  console.log("");
  console.log("Start Herald against it, in another terminal:");
  console.log(
    `  ProactiveInstall=true TeamsAppId=${TEAMS_APP_ID} GraphEndpoint=${graph.endpoint} npm start`,
  );
  console.log("Then notify someone who never opened the bot, or the whole group:");
  console.log(
    `  npx herald notify --tenant ${TENANT_ID} --to ${PEOPLE[0]!.upn} --text "Hello from Herald" --wait`,
  );
  console.log(`  (group "Sales": ${group.id}, three people and a guest)`);
  console.log("Messages arriving in Teams are printed below. Stop: Ctrl+C.");

  const seen = new Map<string, number>();
  const timer = setInterval(() => {
    for (const person of people) {
      const teamsUser = graph.user(person.id)?.teamsUser;
      if (teamsUser === undefined) continue;
      const messages = teams.messagesToUser(teamsUser);
      for (const message of messages.slice(seen.get(person.id) ?? 0))
        console.log(`Teams -> ${person.displayName}: ${message.text ?? "(an Adaptive Card)"}`);
      seen.set(person.id, messages.length);
    }
  }, 250);

  const stop = () => {
    clearInterval(timer);
    void Promise.all([graph.close(), teams.close()]).then(() => process.exit(0));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

if (require.main === module) void main();
