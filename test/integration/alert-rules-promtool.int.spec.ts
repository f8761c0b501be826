// The alert rules README gives operators, as Prometheus runs them: `promtool check rules` on the README's own YAML (not
// a copy), then `promtool test rules` with series shaped like a hub's /metrics, so each alert is shown to fire on what
// it is written for and to stay quiet on a healthy hub. A rule whose expression names a metric the hub does not have,
// or that can never fire (the depth alerts while no figure is read), is what this is here to catch.
//
// Without promtool the suite skips with one line; under CI (.ci/run installs it and exports RTS_REQUIRE_PROMTOOL=1) a
// missing promtool fails it instead.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROMTOOL_PATH, promtoolUnavailable } from '../support/promtool';

const noPromtool = promtoolUnavailable();
if (noPromtool) console.warn(`promtool alert rule tests skipped: ${noPromtool}`);
const describePromtool = noPromtool ? describe.skip : describe;

/** The README's fenced YAML blocks that hold Prometheus rule groups. */
const readmeRuleFiles = (): string[] => {
  const readme = readFileSync(join(__dirname, '../../README.md'), 'utf8');
  return [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((yaml) => /^groups:/m.test(yaml));
};

const promtool = (args: string[], cwd: string): { code: number | null; output: string } => {
  const run = spawnSync(PROMTOOL_PATH, args, { cwd, encoding: 'utf8' });
  return { code: run.status, output: `${run.stdout}${run.stderr}`.trim() };
};

/** The names of every alert in the README's rules. */
const alertNames = (files: readonly string[]): string[] => files.flatMap((yaml) => [...yaml.matchAll(/^\s+- alert: (\S+)$/gm)].map((m) => m[1]!));

// Series at one sample a minute. A read timestamp that follows the clock is `0+60x…` (time() in seconds at minute i is
// 60 i); one that stopped is a constant.
const TESTS = `
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'rts_dead_letters{instance="hub-1"}'
        values: '0+1x120'
      - series: 'rts_dead_letters_read_timestamp_seconds{instance="hub-1"}'
        values: '0+60x20 1200x100'
      - series: 'rts_downlink_queue_depth{instance="hub-1",system="city-a"}'
        values: '0+20x120'
      - series: 'rts_downlink_oldest_message_age_seconds{instance="hub-1",system="city-a"}'
        values: '0+60x120'
      - series: 'rts_downlink_queue_depth{instance="hub-1",system="city-b"}'
        values: '3x120'
      - series: 'rts_downlink_oldest_message_age_seconds{instance="hub-1",system="city-b"}'
        values: '0x120'
      - series: 'rts_downlink_queue_depth_read_timestamp_seconds{instance="hub-1"}'
        values: '0+60x30 1800x90'
    alert_rule_test:
      # Healthy at 15 minutes: both figures read every minute, nothing piled up.
      - { eval_time: 15m, alertname: RtsDeadLetterDepthUnknown, exp_alerts: [] }
      - { eval_time: 15m, alertname: RtsDownlinkDepthUnknown, exp_alerts: [] }
      - { eval_time: 15m, alertname: RtsSystemFallingBehind, exp_alerts: [] }
      - { eval_time: 15m, alertname: RtsDownlinkQueueDeep, exp_alerts: [] }
      # The dead letter depth stopped being read at 20m: more than 10 minutes old from 30m, for 5m: firing at 36m.
      - { eval_time: 33m, alertname: RtsDeadLetterDepthUnknown, exp_alerts: [] }
      - eval_time: 36m
        alertname: RtsDeadLetterDepthUnknown
        exp_alerts:
          - exp_labels: { instance: hub-1 }
            exp_annotations:
              summary: "the dead letter queue's depth has not been read for 10 minutes (broker away, or without the statistics plugin: see the hub's log)"
      # The downlink depths stopped being read at 30m (the store failing, say), while the dead letter depth was read
      # until 20m: firing from 46m, on its own timestamp.
      - { eval_time: 43m, alertname: RtsDownlinkDepthUnknown, exp_alerts: [] }
      - eval_time: 46m
        alertname: RtsDownlinkDepthUnknown
        exp_alerts:
          - exp_labels: { instance: hub-1 }
            exp_annotations:
              summary: "the downlink queues' depths have not been read for 10 minutes (broker away or without the statistics plugin, or the hub's store failing: see rts_downlink_queue_depth_readings_total and the hub's log)"
      # city-a grows and its first message has waited over an hour from 61m; city-b holds 3 that are taken (age 0).
      - eval_time: 62m
        alertname: RtsSystemFallingBehind
        exp_alerts:
          - exp_labels: { system: city-a }
            exp_annotations:
              summary: "city-a has not taken its downlink for over an hour and its queue grows: GET /systems/city-a"
  - interval: 1m
    input_series:
      - series: 'rts_downlink_queue_depth{instance="hub-1",system="city-a"}'
        values: '20000x60'
      - series: 'rts_downlink_queue_depth{instance="hub-2",system="city-a"}'
        values: '20000x60'
    alert_rule_test:
      # Two hubs on one broker report the same queue: one alert, per system.
      - { eval_time: 20m, alertname: RtsDownlinkQueueDeep, exp_alerts: [] }
      - eval_time: 31m
        alertname: RtsDownlinkQueueDeep
        exp_alerts:
          - exp_labels: { system: city-a }
            exp_annotations:
              summary: "20000 messages wait for city-a: its queue holds the broker's store (README: \\"A full broker store\\")"
      - eval_time: 31m
        alertname: RtsDeadLettersGrowing
        exp_alerts: []
`;

describePromtool(`the README's alert rules in promtool${noPromtool ? `, skipped: ${noPromtool}` : ''}`, () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rts-alert-rules-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('README gives one file of rules, with the alerts the tests below cover', () => {
    const files = readmeRuleFiles();
    expect(files).toHaveLength(1);
    expect(alertNames(files).sort()).toEqual(
      ['RtsDeadLetterDepthUnknown', 'RtsDeadLettersGrowing', 'RtsDeadLettersPilingUp', 'RtsDownlinkDepthUnknown', 'RtsDownlinkQueueDeep', 'RtsSystemFallingBehind'].sort(),
    );
  });

  test('promtool check rules accepts them', () => {
    writeFileSync(join(dir, 'rules.yml'), readmeRuleFiles()[0]!);
    const checked = promtool(['check', 'rules', 'rules.yml'], dir);
    expect(checked.output).toContain('SUCCESS: 6 rules found');
    expect(checked.code).toBe(0);
  });

  test('each alert fires on the series it is written for, and not on a healthy hub', () => {
    writeFileSync(join(dir, 'rules.yml'), readmeRuleFiles()[0]!);
    writeFileSync(join(dir, 'tests.yml'), TESTS);
    const tested = promtool(['test', 'rules', 'tests.yml'], dir);
    expect(tested.output).toContain('SUCCESS');
    expect(tested.code).toBe(0);
  });

  test('promtool test rules does fail an alert that does not fire (the test above is not a no-op)', () => {
    const rules = readmeRuleFiles()[0]!.replace('time() - rts_downlink_queue_depth_read_timestamp_seconds > 600', 'time() - rts_downlink_queue_depth_read_timestamp > 600');
    writeFileSync(join(dir, 'rules.yml'), rules);
    writeFileSync(join(dir, 'tests.yml'), TESTS);
    const tested = promtool(['test', 'rules', 'tests.yml'], dir);
    expect(tested.code).not.toBe(0);
    expect(tested.output).toContain('RtsDownlinkDepthUnknown');
  });
});
