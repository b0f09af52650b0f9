import { isOutsideHostNotice } from "../../shared/registry";

/**
 * Jest setup: tests load function modules outside the Functions host, where @azure/functions
 * prints its "test mode" notices (test/unit/registration-outside-host.test.ts checks them once);
 * every other console.warn still prints.
 */
const warn = console.warn.bind(console);
console.warn = (...args: unknown[]) => {
  if (!isOutsideHostNotice(args[0])) warn(...args);
};
