import {
  app,
  type HttpFunctionOptions,
  type ServiceBusQueueFunctionOptions,
} from "@azure/functions";

/**
 * Registers functions with the Functions host and remembers them, so the local host
 * (`npm start`) serves exactly what Azure would, with the same routes and handlers.
 */
export type Registration =
  | { kind: "http"; name: string; options: HttpFunctionOptions }
  | { kind: "serviceBusQueue"; name: string; options: ServiceBusQueueFunctionOptions };

const registrations: Registration[] = [];

export function registerHttp(name: string, options: HttpFunctionOptions): void {
  registrations.push({ kind: "http", name, options });
  app.http(name, options);
}

export function registerServiceBusQueue(
  name: string,
  options: ServiceBusQueueFunctionOptions,
): void {
  registrations.push({ kind: "serviceBusQueue", name, options });
  app.serviceBusQueue(name, options);
}

export function registeredFunctions(): readonly Registration[] {
  return registrations;
}

/**
 * Outside the Functions host, @azure/functions warns once that it is in "test mode" and once per
 * `app.*` call that it skips the registration. Where that is expected (`npm start`, tests: the
 * registrations are kept above), those lines only mislead.
 */
export function isOutsideHostNotice(message: unknown): boolean {
  return (
    typeof message === "string" &&
    /^WARNING: (Failed to detect the Azure Functions runtime|Skipping call to register function)/.test(
      message,
    )
  );
}
