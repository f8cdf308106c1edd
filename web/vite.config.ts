import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

// Served by the gateway at /admin and /docs (assets embedded in the binary); `npm run dev` proxies the
// APIs to a gateway on 127.0.0.1:8080.
export default defineConfig({
  base: "/admin/",
  plugins: [preact()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    // Swagger UI (the /docs page) is one 1.8 MB bundle, loaded only there.
    chunkSizeWarningLimit: 2000,
    // Two pages: the console (index.html, at /admin) and the API reference (docs.html, at /docs).
    rollupOptions: {
      input: { index: "index.html", docs: "docs.html" },
    },
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
