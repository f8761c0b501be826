package rts.bench;

import javax.jms.CompletionListener;
import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.Message;
import javax.jms.MessageProducer;
import javax.jms.Session;
import javax.jms.TextMessage;
import java.util.UUID;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.qpid.jms.JmsConnectionFactory;

/**
 * Uplink baseline: persistent JMS TextMessages (an AMQP value string on the wire, like our SDK's body) with the
 * same application-properties, sent asynchronously (JMS 2.0 CompletionListener) with at most `inflight` unsettled
 * at a time; a send counts when the broker accepted it (completion). Prints one JSON line per round.
 *
 *   java -jar target/uplink-producer.jar URL QUEUE MESSAGES INFLIGHT BODY_FILE ROUNDS
 * Round r sends to QUEUE.r; the caller discards round 0 as the JIT warm-up.
 */
public final class Producer {
  public static void main(String[] args) throws Exception {
    String url = args[0];
    String queue = args[1];
    int messages = Integer.parseInt(args[2]);
    int inflight = Integer.parseInt(args[3]);
    String body = new String(java.nio.file.Files.readAllBytes(java.nio.file.Path.of(args[4])), java.nio.charset.StandardCharsets.UTF_8);
    int rounds = args.length > 5 ? Integer.parseInt(args[5]) : 1;
    JmsConnectionFactory factory = new JmsConnectionFactory(url);
    // Never pre-settle (fire-and-forget) persistent sends: completion = broker's accepted outcome.
    factory.setForceAsyncSend(false);
    try (Connection connection = factory.createConnection()) {
      connection.start();
      Session session = connection.createSession(false, Session.AUTO_ACKNOWLEDGE);
      for (int round = 0; round < rounds; round++) {
        // A fresh queue per round (QUEUE.<round>), like the Node clients, so queue depth is the same for all.
        MessageProducer producer = session.createProducer(session.createQueue(queue + "." + round));
        producer.setDeliveryMode(DeliveryMode.PERSISTENT);
        Semaphore window = new Semaphore(inflight);
        AtomicLong done = new AtomicLong();
        AtomicReference<Exception> failure = new AtomicReference<>();
        CompletionListener listener = new CompletionListener() {
          @Override public void onCompletion(Message message) { done.incrementAndGet(); window.release(); }
          @Override public void onException(Message message, Exception exception) { failure.compareAndSet(null, exception); window.release(); }
        };
        long t0 = System.nanoTime();
        for (int i = 0; i < messages; i++) {
          window.acquire();
          if (failure.get() != null) throw failure.get();
          TextMessage message = session.createTextMessage(body);
          String id = UUID.randomUUID().toString();
          message.setStringProperty("messageId", id);
          message.setStringProperty("type", "expert.registered");
          message.setIntProperty("version", 1);
          message.setStringProperty("systemId", "bench-java");
          message.setStringProperty("correlationId", id);
          message.setStringProperty("contentType", "application/json");
          message.setStringProperty("codec", "json");
          producer.send(message, listener);
        }
        if (!window.tryAcquire(inflight, 120, TimeUnit.SECONDS)) throw new IllegalStateException("sends not completed in time");
        if (failure.get() != null) throw failure.get();
        double seconds = (System.nanoTime() - t0) / 1e9;
        producer.close();
        System.out.println("{\"round\":" + round + ",\"messages\":" + done.get() + ",\"seconds\":" + seconds + ",\"rate\":" + (done.get() / seconds) + "}");
      }
    }
  }
}
