import assert from "node:assert/strict";
import { acquireGpu, type GpuContext } from "../kernels/gpu.ts";
import { RAMP_FACTOR, summarizeSamples, timeGpu, trimClockRamp } from "./timing.ts";
import { timedPassDescriptor } from "../kernels/variant.ts";

Deno.test("summarizeSamples() gives interpolated percentiles and keeps samples in order", () => {
  const s = summarizeSamples([5, 1, 4, 2, 3], "timestamp");
  assert.equal(s.unit, "ms");
  assert.equal(s.method, "timestamp");
  assert.equal(s.median, 3);
  assert.equal(s.min, 1);
  assert.equal(s.max, 5);
  assert.equal(s.mean, 3);
  assert.ok(Math.abs(s.p10 - 1.4) < 1e-12);
  assert.ok(Math.abs(s.p90 - 4.6) < 1e-12);
  assert.equal(s.count, 5);
  assert.deepEqual(s.samples, [5, 1, 4, 2, 3]);
  assert.equal(summarizeSamples([2, 4], "wall").median, 3);
  assert.throws(() => summarizeSamples([], "wall"), /no samples/);
});

const SHADER = /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> buf: array<vec4<u32>>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x < arrayLength(&buf)) { buf[id.x] = buf[id.x] * 3u + vec4<u32>(1u); }
}`;

function _smallPass(gpu: GpuContext, words: number) {
  const buffer = gpu.device.createBuffer({ size: words * 16, usage: GPUBufferUsage.STORAGE });
  const pipeline = gpu.device.createComputePipeline({
    layout: "auto",
    compute: { module: gpu.device.createShaderModule({ code: SHADER }), entryPoint: "main" },
  });
  const bindGroup = gpu.device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer } }],
  });
  return {
    buffer,
    encode(
      encoder: GPUCommandEncoder,
      ts?: { querySet: GPUQuerySet; beginIndex: number; endIndex: number },
    ) {
      const pass = encoder.beginComputePass(timedPassDescriptor(ts));
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(Math.ceil(words / 64));
      pass.end();
    },
  };
}

Deno.test("trimClockRamp() drops the slow prefix of a clock ramp, in every step, and nothing else", () => {
  // H200 under Dawn (docs/perf): idle clock, an intermediate step, then full clock.
  const ramp = [1.52, 1.53, 1.51, 1.0, 1.01, 0.99, 0.82, 0.83, 0.81, 0.82, 0.82, 0.83];
  const r = trimClockRamp(ramp);
  assert.equal(r.dropped, 6);
  assert.deepEqual(r.kept, ramp.slice(6));
  // A steady run with one slow sample in the middle and a slow last one keeps them all.
  const steady = [0.67, 0.68, 0.67, 3.3, 0.67, 0.67, 0.68, 0.67, 0.9];
  assert.deepEqual(trimClockRamp(steady), { kept: steady, dropped: 0 });
  // Just inside the factor is not ramp; just outside is.
  const median = 2;
  const edge = [median * RAMP_FACTOR, median, median, median, median, median];
  assert.equal(trimClockRamp(edge).dropped, 0);
  assert.equal(trimClockRamp([median * RAMP_FACTOR * 1.01, ...edge.slice(1)]).dropped, 1);
  // Too few samples to tell: kept as they are.
  assert.deepEqual(trimClockRamp([5, 1]), { kept: [5, 1], dropped: 0 });
  // Random steady noise within +-10% never loses a sample.
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let trial = 0; trial < 200; trial++) {
    const xs = Array.from({ length: 30 }, () => 1 + 0.2 * (rand() - 0.5));
    assert.equal(trimClockRamp(xs).dropped, 0, xs.join(" "));
  }
});

Deno.test("timeGpu() times a pass with GPU timestamps written by the callback", async () => {
  const gpu = await acquireGpu();
  try {
    assert.ok(gpu.hasTimestamps, "this adapter should offer timestamp-query");
    const work = _smallPass(gpu, 1 << 14);
    const t0 = performance.now();
    const stats = await timeGpu(gpu, work.encode, { warmup: 1, iters: 5 });
    const wall = performance.now() - t0;
    assert.equal(stats.method, "timestamp");
    assert.equal(stats.count, 5);
    assert.equal(stats.samples.length, 5);
    assert.ok(stats.min > 0 && stats.min <= stats.p10 && stats.p10 <= stats.median);
    assert.ok(stats.median <= stats.p90 && stats.p90 <= stats.max);
    // GPU time of the samples cannot exceed the host time of the whole call.
    assert.ok(stats.samples.reduce((a, b) => a + b, 0) < wall);
    work.buffer.destroy();
  } finally {
    gpu.destroy();
  }
});

Deno.test("timeGpu() keeps sampling until minTimeMs is reached", async () => {
  const gpu = await acquireGpu();
  try {
    const work = _smallPass(gpu, 1 << 10);
    const stats = await timeGpu(gpu, work.encode, { warmup: 0, iters: 2, minTimeMs: 1 });
    assert.ok(stats.count >= 2);
    assert.ok(stats.samples.reduce((a, b) => a + b, 0) >= 1 || stats.count === 1000);
    work.buffer.destroy();
  } finally {
    gpu.destroy();
  }
});

Deno.test("timeGpu() brackets a buffer copy and sees a larger copy take longer", async () => {
  const gpu = await acquireGpu();
  try {
    const size = 8 << 20;
    const src = gpu.device.createBuffer({ size, usage: GPUBufferUsage.COPY_SRC });
    const dst = gpu.device.createBuffer({ size, usage: GPUBufferUsage.COPY_DST });
    const small = await timeGpu(
      gpu,
      (e) => e.copyBufferToBuffer(src, 0, dst, 0, size / 16),
      { warmup: 1, iters: 3, bracket: true },
    );
    const large = await timeGpu(
      gpu,
      (e) => e.copyBufferToBuffer(src, 0, dst, 0, size),
      { warmup: 1, iters: 3, bracket: true },
    );
    assert.equal(large.method, "timestamp");
    assert.ok(large.median > small.median, `${large.median} > ${small.median}`);
    src.destroy();
    dst.destroy();
  } finally {
    gpu.destroy();
  }
});

Deno.test("timeGpu() falls back to wall clock when asked, batching iterations per sample", async () => {
  const gpu = await acquireGpu();
  try {
    const work = _smallPass(gpu, 1 << 10);
    const stats = await timeGpu(gpu, work.encode, { warmup: 1, iters: 2, method: "wall" });
    assert.equal(stats.method, "wall");
    assert.equal(stats.count, 2);
    assert.ok((stats.itersPerSample ?? 0) >= 1);
    assert.ok(stats.median > 0);
    work.buffer.destroy();
  } finally {
    gpu.destroy();
  }
});

Deno.test("timeGpu() says so when the callback writes no timestamps", async () => {
  const gpu = await acquireGpu();
  try {
    const work = _smallPass(gpu, 64);
    await assert.rejects(
      () => timeGpu(gpu, (e) => work.encode(e), { warmup: 0, iters: 1 }),
      /must write ts\.beginIndex .*bracket: true/,
    );
    await assert.rejects(
      () => timeGpu(gpu, work.encode, { iters: 0 }),
      (e: unknown) =>
        e instanceof RangeError && /iters must be an integer >= 1, got 0/.test(e.message),
    );
    work.buffer.destroy();
  } finally {
    gpu.destroy();
  }
});

Deno.test("timeGpu() records several iterations per submit, each with its own timestamps", async () => {
  const gpu = await acquireGpu();
  try {
    const work = _smallPass(gpu, 1 << 14);
    let calls = 0;
    const slots = new Set<number>();
    const stats = await timeGpu(gpu, (encoder, ts) => {
      calls++;
      if (ts) slots.add(ts.beginIndex);
      work.encode(encoder, ts);
    }, { warmup: 0, iters: 7, itersPerSubmit: 3 });
    assert.equal(stats.method, "timestamp");
    assert.equal(stats.count, 7);
    assert.equal(stats.itersPerSubmit, 3);
    assert.equal(calls, 7);
    assert.equal(slots.size, 7, "every iteration writes its own timestamp pair");
    assert.ok(stats.samples.every((x) => x > 0));
    await assert.rejects(
      timeGpu(gpu, work.encode, { itersPerSubmit: 0 }),
      /itersPerSubmit must be an integer >= 1, got 0/,
    );
    work.buffer.destroy();
  } finally {
    gpu.destroy();
  }
});
