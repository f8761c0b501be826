import { accessSync, constants } from 'node:fs';

/**
 * A program some tests need that a machine may lack (Chromium, promtool): where it is missing those tests skip with
 * one line saying why, except where it is required, under CI (`.ci/run` installs it and exports `requireVar`=1;
 * CI=true counts too), where a missing one throws, so a broken install can never pass as a skip.
 */
export type RequiredTool = Readonly<{
  /** As the reason names it: "Chromium", "promtool". */
  name: string;
  /** What the tests are, for the error: "the browser tests". */
  tests: string;
  /** The Debian package that brings it. */
  debianPackage: string;
  /** The env var that overrides `path`, and the one that requires the tool. */
  pathVar: string;
  requireVar: string;
}>;

export const toolRequired = (tool: RequiredTool, env: NodeJS.ProcessEnv): boolean => env[tool.requireVar] === '1' || env.CI === 'true' || env.CI === '1';

/** Why `tool` cannot run here (nothing executable at `path`), or null when it can; where it is required, throws. */
export const toolUnavailable = (tool: RequiredTool, path: string, env: NodeJS.ProcessEnv): string | null => {
  try {
    accessSync(path, constants.X_OK);
    return null;
  } catch {
    const reason = `no ${tool.name} at ${path} (apt-get install -y ${tool.debianPackage}, or set ${tool.pathVar})`;
    if (toolRequired(tool, env)) throw new Error(`${tool.tests} must run here (CI / ${tool.requireVar}=1), but there is ${reason}`);
    return reason;
  }
};
