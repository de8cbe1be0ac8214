package dev.latentmoe.kernels;

import dev.latentmoe.memory.MemoryAccounting;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** After every test: no arena left open and the byte accounting back to zero. */
final class NoLeaks implements AfterEachCallback {
    @Override
    public void afterEach(ExtensionContext context) {
        assertEquals(0, MemoryAccounting.openArenas(), "arenas left open by " + context.getDisplayName());
        assertEquals(0, MemoryAccounting.totalBytes(), "bytes left accounted by " + context.getDisplayName());
    }
}
