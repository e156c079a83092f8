// The ring's room request between two processes: a producer that finds the ring full asks for a
// wake-up and sleeps; a consumer that makes room must see the request. 20 million small messages
// through a 64-byte ring, so that the ring is full, and each side waiting, most of the time. The
// producer announces its bytes both ways the transport does: a bump of the consumer's counter
// for each (ring), and a bump only when the consumer sleeps (published, for a consumer that polls
// its ring while awake).
import { randomBytes } from "node:crypto";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { loadShm } from "../src/transport/native.js";
import { ROOT } from "./helpers.js";

const shm = loadShm().addon!;

describe("Ring between two processes", () => {
  it.each(["ring", "published"])("never loses the producer's room request, nor the consumer's wake-up (bytes announced with %s)", async (announce) => {
    const name = `/tsmpi-test-${randomBytes(6).toString("hex")}`;
    const CAP = 64;
    // The producer's doorbell, the consumer's, then the ring.
    const bytes = 128 + 192 + CAP;
    shm.map(name, bytes, true);
    try {
      // Each side waits as the transport's doorbell does (announce the sleep, look once more,
      // sleep while the counter holds); a wait that times out although its condition holds lost
      // its wake-up (the peer sleeps for the 1 s bound only if it waits too).
      const common = `
        import { loadShm } from "./src/transport/native.ts";
        import { Ring } from "./src/transport/ring.ts";
        import { Bell } from "./src/transport/doorbell.ts";
        const shm = loadShm().addon;
        const buf = shm.map(${JSON.stringify(name)}, ${bytes}, false);
        const PRODUCER = 0, CONSUMER = 64;
        const ROUNDS = 20000000;
        let lost = 0;
        function wait(at, ready) {
          const words = new Int32Array(buf, at, 2);
          for (let polls = 0; polls < 2000; polls++) if (ready()) return;
          for (;;) {
            Atomics.store(words, 1, 1);
            const seen = Atomics.load(words, 0);
            if (ready()) break;
            const woke = shm.sleep(buf, at, seen, 1e6);
            if (!woke && ready()) lost++;
          }
          Atomics.store(words, 1, 0);
        }
      `;
      const producer = `${common}
        const r = new Ring(buf, 128, ${CAP}, "producer");
        const bell = new Bell(shm, buf, CONSUMER, true);
        const chunk = new Uint8Array(24);
        for (let i = 0; i < ROUNDS; i++) {
          for (let sent = 0; ; ) {
            const n = r.push(chunk.subarray(sent));
            if (n > 0) bell.${announce}();
            if ((sent += n) === chunk.byteLength) break;
            // Each look asks again, as the transport's Outbox does: a wake-up may answer an
            // older request whose room this loop has filled since (with hasRoom() here, this
            // test loses a wake-up in most runs).
            if (!r.wantRoom()) wait(PRODUCER, () => r.wantRoom());
          }
        }
        console.log(JSON.stringify({ lost }));
      `;
      const consumer = `${common}
        const r = new Ring(buf, 128, ${CAP}, "consumer");
        const bell = new Bell(shm, buf, PRODUCER);
        const dst = new Uint8Array(40);
        for (let got = 0; got < ROUNDS * 24; ) {
          const n = r.pull(dst);
          if (n > 0 && r.takeRoomRequest()) bell.ring();
          got += n;
          if (n === 0) wait(CONSUMER, () => r.available() > 0);
        }
        console.log(JSON.stringify({ lost }));
      `;
      const run = (code: string) => execa(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { cwd: ROOT, timeout: 60_000 });
      const [p, c] = await Promise.all([run(producer), run(consumer)]);
      expect(JSON.parse(p.stdout)).toEqual({ lost: 0 });
      expect(JSON.parse(c.stdout)).toEqual({ lost: 0 });
    } finally {
      shm.unlink(name);
    }
  }, 90_000);
});
