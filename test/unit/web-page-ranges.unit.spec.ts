// The patient page checks a reading against the same plausible ranges as the hub (the domain's PLAUSIBLE), and its
// hints say them: the page has no copy of its own that could drift.
import { PLAUSIBLE } from '../../src/domain/monitoring/tele-observation';

type Ranges = { systolic: { min: number; max: number }; diastolic: { min: number; max: number } };

const pageOf = (): { js: string; html: string } => ({
  js: (jest.requireActual('../../src/adapters/http/web/app-js') as { APP_JS: string }).APP_JS,
  html: (jest.requireActual('../../src/adapters/http/web/index-html') as { INDEX_HTML: string }).INDEX_HTML,
});

const expectPageCarries = ({ js, html }: { js: string; html: string }, ranges: Ranges): void => {
  const range = /var RANGE = (\{[^;]*\});/.exec(js);
  expect(range).not.toBeNull();
  expect(JSON.parse(range![1]!)).toEqual({ systolic: [ranges.systolic.min, ranges.systolic.max], diastolic: [ranges.diastolic.min, ranges.diastolic.max] });
  expect(html).toContain(`<p class="hint" id="systolic-hint">${ranges.systolic.min} to ${ranges.systolic.max}</p>`);
  expect(html).toContain(`<p class="hint" id="diastolic-hint">${ranges.diastolic.min} to ${ranges.diastolic.max}, below systolic</p>`);
};

describe("the patient page's plausible ranges", () => {
  it("are the domain's, in the script and in the hints", () => {
    expectPageCarries(pageOf(), PLAUSIBLE);
  });

  it("follow the domain's when those change (no copy on the page)", () => {
    const changed: Ranges = { systolic: { min: 61, max: 287 }, diastolic: { min: 33, max: 177 } };
    jest.isolateModules(() => {
      jest.doMock('../../src/domain/monitoring/tele-observation', () => ({ ...jest.requireActual('../../src/domain/monitoring/tele-observation'), PLAUSIBLE: changed }));
      expectPageCarries(pageOf(), changed);
    });
  });
});
