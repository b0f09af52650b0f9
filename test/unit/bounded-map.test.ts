import { BoundedMap } from "../../shared/util/bounded-map";

describe("BoundedMap", () => {
  it("evicts the least recently used entry when one more is added", () => {
    const evicted: string[] = [];
    const map = new BoundedMap<string, number>(2, (key) => evicted.push(key));
    map.set("a", 1).set("b", 2);
    map.get("a"); // a is now the most recently used
    map.set("c", 3);
    expect(evicted).toEqual(["b"]);
    expect([map.has("a"), map.has("b"), map.has("c")]).toEqual([true, false, true]);
  });

  it("does not count a peek as a use", () => {
    const map = new BoundedMap<string, number>(2);
    map.set("a", 1).set("b", 2);
    map.peek("a");
    map.set("c", 3);
    expect(map.has("a")).toBe(false);
  });

  it("never holds more than its bound, whatever the number of keys", () => {
    const map = new BoundedMap<number, number>(100);
    for (let i = 0; i < 100_000; i++) map.set(i, i);
    expect(map.size).toBe(100);
    expect(map.oldest()).toEqual([99_900, 99_900]);
  });

  it("refuses a bound that is not a positive integer", () => {
    expect(() => new BoundedMap(0)).toThrow(RangeError);
  });
});
