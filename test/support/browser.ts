import { inflateSync } from 'node:zlib';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { startHub, type HubProcess } from './hub-process';
import { toolRequired, toolUnavailable, type RequiredTool } from './required-tool';

/**
 * Debian's chromium (apt-get install -y chromium), driven by playwright-core: no browser download. Playwright
 * adds its own headless switch; the rest keep the browser from calling home during a test.
 */
export const CHROMIUM_PATH = process.env.RTS_CHROMIUM_PATH ?? '/usr/bin/chromium';

const CHROMIUM: RequiredTool = { name: 'Chromium', tests: 'the browser tests', debianPackage: 'chromium', pathVar: 'RTS_CHROMIUM_PATH', requireVar: 'RTS_REQUIRE_CHROMIUM' };

/** Whether a missing Chromium fails the browser tests instead of skipping them (required-tool.ts). */
export const chromiumRequired = (env: NodeJS.ProcessEnv = process.env): boolean => toolRequired(CHROMIUM, env);

/**
 * Why the browser tests cannot run here (no executable Chromium at `path`), or null when they can; where Chromium is
 * required, throws (required-tool.ts). Checked before any launch, so a machine without it gets one line, not a failed
 * launch per test (each of which left playwright-artifacts-* and a profile dir in the temp dir).
 */
export const chromiumUnavailable = (path: string = CHROMIUM_PATH, env: NodeJS.ProcessEnv = process.env): string | null => toolUnavailable(CHROMIUM, path, env);

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export const launchChromium = (): Promise<Browser> => chromium.launch({ executablePath: CHROMIUM_PATH, args: ARGS });

/**
 * A hub on `dataDir` and a Chromium, started at once. When one fails, the other is stopped before the error is
 * thrown (Promise.all would drop it: a hub left running kept jest from exiting).
 */
export async function startHubAndChromium(dataDir: string): Promise<Readonly<{ hub: HubProcess; browser: Browser }>> {
  const [started, launched] = await Promise.allSettled([startHub({ dataDir }), launchChromium()]);
  if (started.status === 'fulfilled' && launched.status === 'fulfilled') return { hub: started.value, browser: launched.value };
  if (started.status === 'fulfilled') await started.value.stop();
  if (launched.status === 'fulfilled') await launched.value.close();
  throw started.status === 'rejected' ? started.reason : (launched as PromiseRejectedResult).reason;
}

/**
 * A browser with the back/forward cache on, as every desktop Chromium has it: playwright turns it off by default
 * (--disable-back-forward-cache), and a page Back brings back from it keeps its script's memory.
 */
export const launchChromiumWithBackForwardCache = (): Promise<Browser> =>
  chromium.launch({ executablePath: CHROMIUM_PATH, args: ARGS, ignoreDefaultArgs: ['--disable-back-forward-cache'] });

/** A browser with a profile on disk (history, session files, cache) in `profileDir`, as a patient's own browser has. */
export const launchChromiumWithProfile = (profileDir: string): Promise<BrowserContext> =>
  chromium.launchPersistentContext(profileDir, { executablePath: CHROMIUM_PATH, args: ARGS });

export type Image = Readonly<{ width: number; height: number; /** RGBA, 4 bytes a pixel */ pixels: Uint8Array }>;

/** Decode a non-interlaced 8-bit RGB or RGBA PNG (what chromium's screenshots are), without a dependency. */
export const decodePng = (png: Buffer): Image => {
  if (png.readUInt32BE(0) !== 0x89504e47) throw new Error('not a PNG');
  let offset = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString('latin1', offset + 4, offset + 8);
    const data = png.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const [depth, colour, , , interlace] = [data[8], data[9], data[10], data[11], data[12]];
      if (depth !== 8 || interlace !== 0 || (colour !== 2 && colour !== 6)) throw new Error(`unsupported PNG (depth ${depth}, colour ${colour}, interlace ${interlace})`);
      channels = colour === 6 ? 4 : 3;
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    offset += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = new Uint8Array(width * height * 4);
  let prev = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const line = new Uint8Array(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? line[i - channels]! : 0;
      const b = prev[i]!;
      const c = i >= channels ? prev[i - channels]! : 0;
      let add = 0;
      if (filter === 1) add = a;
      else if (filter === 2) add = b;
      else if (filter === 3) add = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        add = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      line[i] = (line[i]! + add) & 0xff;
    }
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 4;
      out[o] = line[x * channels]!;
      out[o + 1] = line[x * channels + 1]!;
      out[o + 2] = line[x * channels + 2]!;
      out[o + 3] = channels === 4 ? line[x * channels + 3]! : 255;
    }
    prev = line;
  }
  return { width, height, pixels: out };
};

/** How many pixels are close (per channel, within `tolerance`) to the colour #rrggbb. */
export const countColour = (image: Image, hex: string, tolerance = 40): number => {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)) as [number, number, number];
  let n = 0;
  for (let o = 0; o < image.pixels.length; o += 4) {
    if (Math.abs(image.pixels[o]! - r) <= tolerance && Math.abs(image.pixels[o + 1]! - g) <= tolerance && Math.abs(image.pixels[o + 2]! - b) <= tolerance) n++;
  }
  return n;
};
