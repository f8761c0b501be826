// The two selectors on the broker's dead letters of the uplink queue (DLQ.rts.uplink): the read-back takes the cursor
// duplicates, the mover everything else, a message without the property included (NULL: `NOT (x LIKE ...)` is UNKNOWN
// then, which a selector does not match, so the complement names IS NULL). The broker evaluates them; the integration
// test (hub-broker-dlq.int.spec.ts) checks them on ActiveMQ.
import { BROKER_CURSOR_DUPLICATE_SELECTOR, BROKER_OTHER_DEAD_LETTER_SELECTOR, brokerDeadLetteredReason } from '../../src/adapters/messaging/amqp-uplink-consumer';
import { reasonCode } from '../../src/adapters/metrics/hub-metrics';

it('the mover takes the complement of the read-back, NULL included', () => {
  expect(BROKER_OTHER_DEAD_LETTER_SELECTOR).toBe(`dlqDeliveryFailureCause IS NULL OR NOT (${BROKER_CURSOR_DUPLICATE_SELECTOR})`);
});

it('its reason is fixed, starts with its metric code and names the uplink queue', () => {
  const reason = brokerDeadLetteredReason('rts.uplink');
  expect(reasonCode(reason)).toBe('broker_dead_lettered');
  expect(reason).toContain('off rts.uplink');
  expect(reason).toContain('not readable over AMQP');
});
