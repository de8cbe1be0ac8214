package dev.latentmoe.memory;

import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * JUnit 5 extension asserting that a test leaves no arena open and no bytes accounted:
 * {@link MemoryAccounting#totalBytes()} == 0 and {@link MemoryAccounting#openArenas()} == 0 after
 * each test. Use with {@code @ExtendWith(ArenaLeakCheck.class)}. Before each test it also checks
 * that the counters start at zero, so a leak is blamed on the test that caused it (an earlier leak
 * fails the next test's setup with a message saying so).
 *
 * <p>Assumes tests in one JVM do not run concurrently (surefire's default). Other modules may copy
 * this class into their own test sources (it only needs the public {@link MemoryAccounting}).
 */
public final class ArenaLeakCheck implements BeforeEachCallback, AfterEachCallback {
    @Override
    public void beforeEach(ExtensionContext context) {
        if (MemoryAccounting.totalBytes() != 0 || MemoryAccounting.openArenas() != 0) {
            throw new AssertionError("memory leaked before " + context.getDisplayName() + " (by an earlier test): "
                    + describe());
        }
    }

    @Override
    public void afterEach(ExtensionContext context) {
        if (MemoryAccounting.totalBytes() != 0 || MemoryAccounting.openArenas() != 0) {
            throw new AssertionError("test " + context.getDisplayName() + " leaked: " + describe());
        }
    }

    private static String describe() {
        return "host=" + MemoryAccounting.hostBytes() + " device=" + MemoryAccounting.deviceBytes() + " mapped="
                + MemoryAccounting.mappedBytes() + " bytes, openArenas=" + MemoryAccounting.openArenas();
    }
}
