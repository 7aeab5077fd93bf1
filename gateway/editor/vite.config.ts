import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// The editor talks gRPC-Web to Envoy. Built, it is served by Envoy on the same origin; in
// `npm run dev` it calls VITE_GATEWAY_URL (default http://127.0.0.1:8800) across origins.
export default defineConfig({
  plugins: [react()],
  server: { port: 5173, strictPort: true },
  build: {
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 800,
    rollupOptions: {
      output: {
        // Keep the protobuf runtime and React in their own long-lived chunks.
        manualChunks: {
          react: ["react", "react-dom", "react-router-dom"],
          rpc: ["@bufbuild/protobuf", "@connectrpc/connect", "@connectrpc/connect-web"],
        },
      },
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
