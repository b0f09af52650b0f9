import { readdirSync } from "node:fs";
import { join } from "node:path";

/**
 * The cold start of a Functions instance is the host loading every function file: what they
 * import at the top is paid before the first invocation of any of them. The composition root
 * (the stores, the pipeline, every schema) comes on the first invocation instead.
 */
describe("function registration (the cold start)", () => {
  it("loads neither the composition root nor zod when the host loads the function files", () => {
    const functions = join(__dirname, "../../functions");
    const quiet = jest.spyOn(console, "warn").mockImplementation(() => undefined);
    const loaded = (name: string) => () => {
      throw new Error(`${name} was loaded at registration`);
    };
    try {
      jest.isolateModules(() => {
        jest.doMock("../../shared/composition", loaded("the composition root"));
        jest.doMock("zod", loaded("zod"));
        for (const file of readdirSync(functions).filter((f) => f.endsWith(".ts")))
          expect(() => {
            // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded as the host loads function files
            require(join(functions, file));
          }).not.toThrow();
      });
    } finally {
      quiet.mockRestore();
    }
  });
});
