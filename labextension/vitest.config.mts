import { defineConfig } from 'vitest/config';

// Unit tests of the pure modules (no JupyterLab, no DOM needed).
export default defineConfig({ test: { include: ['test/**/*.spec.ts'], environment: 'node' } });
