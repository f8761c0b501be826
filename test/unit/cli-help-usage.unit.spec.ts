import { EXPORT_HELP, REVIEW_HELP, UPLOAD_HELP } from '../../src/adapters/cli/args';

// A command's usage lines name every option its options list explains (rts review --help left out --timeout,
// --width and --ascii).
const usageOf = (help: string): string => help.split('\n\n')[0]!;
const optionsOf = (help: string): string[] => {
  const list = help.slice(help.indexOf('\nOptions:\n'));
  return [...list.matchAll(/^ {2}(?:-\w, )?(--[a-z-]+)/gm)].map((m) => m[1]!).filter((o) => o !== '--help');
};

describe('the CLI help texts', () => {
  it.each([
    ['upload', UPLOAD_HELP],
    ['review', REVIEW_HELP],
    ['export', EXPORT_HELP],
  ])('rts %s: the usage lines name every option listed', (_name, help) => {
    const options = optionsOf(help);
    expect(options.length).toBeGreaterThan(2);
    expect(options.filter((o) => !new RegExp(`${o}\\b`).test(usageOf(help)))).toEqual([]);
  });
});
