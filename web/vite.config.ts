/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// The agent serves web/dist under a strict Content-Security-Policy (no inline scripts or
// styles), so the build must emit only external .js and .css files.
export default defineConfig({
  plugins: [svelte()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // Inlined assets would become data: URLs for fonts/scripts, which the CSP refuses.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  server: {
    proxy: {
      // A local agent: `hearth-agent --dev --data-dir DIR --listen 127.0.0.1:8443`.
      '/api': { target: 'https://127.0.0.1:8443', secure: false, changeOrigin: false },
    },
  },
  test: {
    include: ['tests/unit/**/*.test.ts'],
    environment: 'node',
  },
});
