import { loadConfig } from "../../shared/config";
import { ConfigError } from "../../shared/errors";

describe("loadConfig", () => {
  it("accepts a local connection string and runs the bot anonymously", () => {
    const config = loadConfig({ TableStorageConnection: "UseDevelopmentStorage=true" });
    expect(config.bot).toEqual({ kind: "anonymous" });
    expect(config.queueName).toBe("notifications");
  });

  it("names every missing setting in one message", () => {
    expect(() => loadConfig({ WEBSITE_SITE_NAME: "herald-prod" })).toThrow(ConfigError);
    try {
      loadConfig({ WEBSITE_SITE_NAME: "herald-prod" });
    } catch (e) {
      const message = (e as Error).message;
      expect(message).toContain("MicrosoftAppId");
      expect(message).toContain("TableStorageConnection__tableServiceUri");
      expect(message).toContain("ServiceBusConnection__fullyQualifiedNamespace");
    }
  });

  it("rejects a bot app id that is not a GUID, naming the setting", () => {
    expect(() => loadConfig({ TableStorageConnection: "x", MicrosoftAppId: "not-a-guid" })).toThrow(
      /MicrosoftAppId: must be a GUID/,
    );
  });
});

describe("loadConfig › graph", () => {
  const local = { TableStorageConnection: "UseDevelopmentStorage=true" };
  const appId = "11111111-1111-4111-8111-111111111111";
  const configured = { ...local, MicrosoftAppId: appId, MicrosoftAppTenantId: appId };
  const teamsAppId = "22222222-2222-4222-8222-222222222222";

  function problemsOf(env: Record<string, string>): string {
    try {
      loadConfig(env);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as Error).message;
    }
    throw new Error("expected loadConfig to refuse the settings");
  }

  it("leaves proactive install off and points at the public Graph endpoint by default", () => {
    expect(loadConfig(local).graph).toEqual({
      proactiveInstall: false,
      teamsAppId: undefined,
      teamsAppCatalogId: undefined,
      endpoint: "https://graph.microsoft.com",
      authenticated: false,
    });
  });

  it("turns proactive install on with the app id, the catalog id and a token in a configured deployment", () => {
    const catalogId = "33333333-3333-4333-8333-333333333333";
    const config = loadConfig({
      ...configured,
      ProactiveInstall: "TRUE",
      TeamsAppId: teamsAppId,
      TeamsAppCatalogId: catalogId,
      GraphEndpoint: "https://graph.microsoft.us/",
    });
    expect(config.graph).toEqual({
      proactiveInstall: true,
      teamsAppId,
      teamsAppCatalogId: catalogId,
      endpoint: "https://graph.microsoft.us",
      authenticated: true,
    });
  });

  it("requires TeamsAppId when ProactiveInstall is true, saying what it is", () => {
    expect(problemsOf({ ...configured, ProactiveInstall: "true" })).toMatch(
      /TeamsAppId: required when ProactiveInstall is true .*manifest id.*externalId/,
    );
  });

  it("refuses a ProactiveInstall that is neither true nor false", () => {
    expect(problemsOf({ ...local, ProactiveInstall: "yes" })).toMatch(
      /ProactiveInstall: must be "true" or "false"/,
    );
  });

  it("refuses a TeamsAppId or TeamsAppCatalogId that is not a GUID", () => {
    const message = problemsOf({ ...local, TeamsAppId: "herald", TeamsAppCatalogId: "x" });
    expect(message).toMatch(/TeamsAppId: must be a GUID/);
    expect(message).toMatch(/TeamsAppCatalogId: must be a GUID/);
  });

  it("refuses a plain-http Graph endpoint when calls carry a token", () => {
    expect(problemsOf({ ...configured, GraphEndpoint: "http://127.0.0.1:9999" })).toMatch(
      /GraphEndpoint: must be https when MicrosoftAppId is set/,
    );
  });

  it("refuses a Graph endpoint with a path, so the token scope and every call stay on one origin", () => {
    expect(
      problemsOf({ ...configured, GraphEndpoint: "https://graph.microsoft.com/v1.0" }),
    ).toMatch(/GraphEndpoint: must be an origin only/);
  });

  it("allows only a loopback Graph endpoint in anonymous mode with proactive install on", () => {
    expect(problemsOf({ ...local, ProactiveInstall: "true", TeamsAppId: teamsAppId })).toMatch(
      /GraphEndpoint: must be a loopback address .*MicrosoftAppId is empty/,
    );
    const config = loadConfig({
      ...local,
      ProactiveInstall: "true",
      TeamsAppId: teamsAppId,
      GraphEndpoint: "http://127.0.0.1:4321",
    });
    expect(config.graph).toMatchObject({
      proactiveInstall: true,
      endpoint: "http://127.0.0.1:4321",
      authenticated: false,
    });
  });

  it("still rejects a malformed Graph endpoint when proactive install is off", () => {
    expect(problemsOf({ ...local, GraphEndpoint: "graph.microsoft.com" })).toMatch(
      /GraphEndpoint: is not a URL/,
    );
  });
});
