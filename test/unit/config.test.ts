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
