/**
 * zod/mini (functional checks, so esbuild keeps only what the schemas use) with zod's English
 * messages, which mini leaves out: every schema imports `z` from here, so users see the same messages.
 */

import { en } from "zod/locales";
import { config } from "zod/mini";

config(en());

export * from "zod/mini";
