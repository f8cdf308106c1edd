import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

// Served by the gateway at /admin (assets embedded in the binary); `npm run dev` proxies the
// APIs to a gateway on 127.0.0.1:8080.
export default defineConfig({
  base: "/admin/",
  plugins: [preact()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 900,
  },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8080",
      "/v1": "http://127.0.0.1:8080",
      "/admin/api": "http://127.0.0.1:8080",
      "/admin/ws": { target: "ws://127.0.0.1:8080", ws: true },
    },
  },
});
