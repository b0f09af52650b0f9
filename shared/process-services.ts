import type { HeraldServices } from "./composition";
import type { NotificationsApi } from "./notifications/http-api";

/*
 * What a function file imports to reach the process's services. The composition root and all it
 * builds (the stores, the pipeline, the request and work item schemas) are required on the first
 * invocation, not when the host loads the function files: registering the functions (the cold
 * start) loads only @azure/functions and the registry.
 */
/* eslint-disable @typescript-eslint/no-require-imports -- lazy: see above */
const composition = () => require("./composition") as typeof import("./composition");

/** The services of this Functions process, built on the first invocation from its settings. */
export function processServices(): HeraldServices {
  return composition().processServices();
}

let api: NotificationsApi | undefined;

/** The `/api/notifications` handlers over this process's notification services. */
export function notificationsApi(): NotificationsApi {
  const { createNotificationsApi } =
    require("./notifications/http-api") as typeof import("./notifications/http-api");
  return (api ??= createNotificationsApi(() => processServices().notifications));
}
/* eslint-enable @typescript-eslint/no-require-imports */
