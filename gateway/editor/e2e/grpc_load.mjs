// Load generator for bench/gateway_overhead.py: the same client library (connect-node) calls the
// same upstream directly over gRPC (HTTP/2) and through Envoy over gRPC-Web (HTTP/1.1, what a
// browser on plain HTTP uses), so the ratio measures the gateway, not two different clients.
//
//   node e2e/grpc_load.mjs --direct http://127.0.0.1:PORT --gateway http://127.0.0.1:PORT \
//        --seconds 4 --concurrency 32 --messages 100
// Prints one JSON object: calls/s per path and streamed-message latencies (ms).
import { execFileSync } from "node:child_process";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { createFileRegistry } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

const { values: args } = parseArgs({
  options: {
    direct: { type: "string" },
    gateway: { type: "string" },
    seconds: { type: "string", default: "4" },
    concurrency: { type: "string", default: "32" },
    messages: { type: "string", default: "100" },
  },
});

// Descriptors straight from protos/ (buf build), so this script needs no generated code.
const protos = fileURLToPath(new URL("../../../protos", import.meta.url));
const buf = fileURLToPath(new URL("../node_modules/.bin/buf", import.meta.url));
const image = execFileSync(buf, ["build", protos, "--as-file-descriptor-set", "-o", "-"], { maxBuffer: 64 << 20 });
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, image));
const RenderService = registry.getService("viarte.render.v1.RenderService");

const seconds = Number(args.seconds);
const concurrency = Number(args.concurrency);

async function throughput(client) {
  for (let i = 0; i < 50; i++) await client.getRenderJob({ id: "bench" });
  let done = 0;
  const stopAt = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < stopAt) {
        await client.getRenderJob({ id: "bench" });
        done += 1;
      }
    }),
  );
  return done / ((performance.now() - started) / 1000);
}

async function latencies(client) {
  const out = [];
  for await (const reply of client.watchRenderJob({ id: `${args.messages}:0.02` })) {
    const sent = reply.payload.value.time;
    out.push(performance.timeOrigin + performance.now() - (Number(sent.seconds) * 1000 + sent.nanos / 1e6));
  }
  return out;
}

const direct = createClient(RenderService, createGrpcTransport({ baseUrl: args.direct }));
const web = createClient(RenderService, createGrpcWebTransport({ baseUrl: args.gateway, httpVersion: "1.1" }));
const result = {
  direct_calls_per_second: await throughput(direct),
  grpc_web_calls_per_second: await throughput(web),
  direct_latency_ms: await latencies(direct),
  grpc_web_latency_ms: await latencies(web),
};
console.log(JSON.stringify(result));
process.exit(0);
