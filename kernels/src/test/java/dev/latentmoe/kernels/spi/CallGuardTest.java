package dev.latentmoe.kernels.spi;

import org.junit.jupiter.api.Test;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The close-while-calling logic every layer object uses (CPU and CUDA kernels, CUDA graphed
 * layers): close waits for the calls in flight, later calls are refused, the release runs once.
 * That a guarded call allocates nothing is bench's SteadyStateAllocationTest (the whole call path).
 */
class CallGuardTest {

    @Test
    void callsAfterCloseAreRefusedWithTheMessage() {
        CallGuard g = new CallGuard("thing is closed");
        g.enter();
        g.exit();
        AtomicInteger released = new AtomicInteger();
        g.close(released::incrementAndGet);
        g.close(released::incrementAndGet);
        assertEquals(1, released.get(), "release runs once");
        assertTrue(g.isClosed());
        IllegalStateException e = assertThrows(IllegalStateException.class, g::enter);
        assertEquals("thing is closed", e.getMessage());
        assertThrows(IllegalStateException.class, g::ensureOpen);
        assertEquals(0, g.callsInFlight(), "a refused call leaves no count behind");
    }

    @Test
    void closeWaitsForTheCallsInFlight() throws Exception {
        CallGuard g = new CallGuard("closed");
        g.enter();
        g.enter();
        AtomicBoolean released = new AtomicBoolean();
        CountDownLatch closing = new CountDownLatch(1);
        Thread closer = Thread.ofPlatform().start(() -> {
            closing.countDown();
            g.close(() -> released.set(true));
        });
        closing.await();
        while (!g.isClosed()) Thread.onSpinWait();
        assertThrows(IllegalStateException.class, g::enter, "new calls are refused while close waits");
        Thread.sleep(50);
        assertFalse(released.get(), "released with two calls in flight");
        g.exit();
        Thread.sleep(20);
        assertFalse(released.get(), "released with one call in flight");
        g.exit();
        closer.join(5_000);
        assertFalse(closer.isAlive(), "close did not return after the last call");
        assertTrue(released.get());
    }

    @Test
    void aSecondCloserReturnsOnlyAfterTheRelease() throws Exception {
        CallGuard g = new CallGuard("closed");
        g.enter();
        CountDownLatch inRelease = new CountDownLatch(1), finish = new CountDownLatch(1);
        AtomicInteger releases = new AtomicInteger();
        Runnable release = () -> {
            releases.incrementAndGet();
            inRelease.countDown();
            try {
                finish.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        };
        Thread first = Thread.ofPlatform().start(() -> g.close(release));
        while (!g.isClosed()) Thread.onSpinWait();
        g.exit();
        assertTrue(inRelease.await(5, TimeUnit.SECONDS));
        AtomicBoolean secondReturned = new AtomicBoolean();
        Thread second = Thread.ofPlatform().start(() -> {
            g.close(release);
            secondReturned.set(true);
        });
        Thread.sleep(50);
        assertFalse(secondReturned.get(), "the second close returned while the first was still freeing");
        finish.countDown();
        first.join(5_000);
        second.join(5_000);
        assertTrue(secondReturned.get());
        assertEquals(1, releases.get());
    }

    @Test
    void anInterruptDoesNotCutTheWaitShort() throws Exception {
        CallGuard g = new CallGuard("closed");
        g.enter();
        AtomicBoolean released = new AtomicBoolean(), interruptKept = new AtomicBoolean();
        Thread closer = Thread.ofPlatform().start(() -> {
            g.close(() -> released.set(true));
            interruptKept.set(Thread.currentThread().isInterrupted());
        });
        while (!g.isClosed()) Thread.onSpinWait();
        closer.interrupt();
        Thread.sleep(50);
        assertFalse(released.get(), "an interrupt made close free under a running call");
        g.exit();
        closer.join(5_000);
        assertTrue(released.get());
        assertTrue(interruptKept.get(), "the closer's interrupt status was lost");
    }

    @Test
    void aFailingReleaseIsNotRetried() {
        CallGuard g = new CallGuard("closed");
        AtomicInteger calls = new AtomicInteger();
        assertThrows(IllegalStateException.class, () -> g.close(() -> {
            calls.incrementAndGet();
            throw new IllegalStateException("boom");
        }));
        g.close(calls::incrementAndGet);
        assertEquals(1, calls.get());
    }

    @Test
    void manyCallersOneCloserNeverOverlap() throws Exception {
        for (int round = 0; round < 300; round++) {
            CallGuard g = new CallGuard("closed");
            AtomicBoolean freed = new AtomicBoolean();
            AtomicReference<String> bad = new AtomicReference<>();
            Thread[] callers = new Thread[4];
            for (int i = 0; i < callers.length; i++) {
                callers[i] = Thread.ofPlatform().start(() -> {
                    while (true) {
                        try {
                            g.enter();
                        } catch (IllegalStateException e) {
                            return;
                        }
                        try {
                            if (freed.get()) bad.compareAndSet(null, "a call ran after the release");
                            Thread.onSpinWait();
                            if (freed.get()) bad.compareAndSet(null, "the release ran during a call");
                        } finally {
                            g.exit();
                        }
                    }
                });
            }
            Thread.sleep(0, 200_000);
            g.close(() -> freed.set(true));
            for (Thread t : callers) t.join(5_000);
            assertNull(bad.get(), "round " + round);
        }
    }
}
