import assert from "node:assert/strict";
import { rowToleranceUsed, worstToleranceUsed } from "./f16_error_model.ts";
import { createRng } from "../workloads/random.ts";

const fewKeyFp8 = {
  headDim: 64,
  qkFlush: 8,
  pvFlush: 32,
  laneSum: false,
  fp8: true,
  softcap: 20,
} as const;

Deno.test("the f16 error model puts lane sums above the default flush on few-key D64 fp8 rows, as the CI saw", () => {
  const keys = [2, 4, 6];
  const plain = worstToleranceUsed(fewKeyFp8, keys, 60, 7);
  const laneSum = worstToleranceUsed({ ...fewKeyFp8, laneSum: true }, keys, 60, 7);
  assert.ok(plain > 0.05 && plain < 1.2, `default ${plain}`);
  assert.ok(laneSum > plain, `lane sums ${laneSum} vs default ${plain}`);
});

Deno.test("the f16 error model's error grows with the logits' scale", () => {
  const at = (logitScale: number) =>
    worstToleranceUsed({ ...fewKeyFp8, fp8: false, softcap: 0, logitScale }, [8, 24], 60, 11);
  assert.ok(at(3) > at(1), `${at(3)} vs ${at(1)}`);
});

Deno.test("the f16 error model is deterministic for a seed and finite", () => {
  const a = rowToleranceUsed({ ...fewKeyFp8, keys: 70 }, createRng(3));
  const b = rowToleranceUsed({ ...fewKeyFp8, keys: 70 }, createRng(3));
  assert.equal(a, b);
  assert.ok(Number.isFinite(a) && a > 0, String(a));
});
