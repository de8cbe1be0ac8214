package dev.latentmoe.memory.interop;

import dev.latentmoe.memory.ArenaLeakCheck;
import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.HostArena;
import dev.latentmoe.memory.MemoryAccounting;
import dev.latentmoe.memory.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** MemoryArena.retain()/release(): a shared arena defers its free, a confined one refuses to close. */
@ExtendWith(ArenaLeakCheck.class)
class ArenaHoldTest {
    @Test
    void sharedArenaDefersFreeToLastRelease() throws Exception {
        HostArena a = HostArena.shared("held");
        Tensor t = a.allocateTensor(DType.F32, 16);
        a.retain();
        a.retain();
        assertEquals(2, a.holds());
        a.close();
        assertFalse(a.isOpen());
        assertThrows(IllegalStateException.class, t::segment, "no Java access after close");
        assertThrows(IllegalStateException.class, a::retain, "no new exports after close");
        assertEquals(64, MemoryAccounting.hostBytes(), "memory stays accounted while held");
        assertEquals(1, MemoryAccounting.openArenas());
        Thread other = new Thread(a::release); // the consumer may release on any thread
        other.start();
        other.join();
        assertEquals(64, MemoryAccounting.hostBytes());
        a.release();
        assertEquals(0, a.holds());
        assertEquals(0, MemoryAccounting.hostBytes(), "freed by the last release");
        assertEquals(0, MemoryAccounting.openArenas());
        assertThrows(IllegalStateException.class, a::release, "release without retain");
        a.close(); // idempotent
    }

    @Test
    void confinedArenaRefusesCloseWhileHeld() {
        HostArena a = HostArena.confined("confined-held");
        a.allocateTensor(DType.F32, 4);
        a.retain();
        IllegalStateException e = assertThrows(IllegalStateException.class, a::close);
        assertTrue(e.getMessage().contains("outstanding export"), e.getMessage());
        assertTrue(a.isOpen(), "a refused close leaves the arena usable");
        a.release();
        a.close();
        assertFalse(a.isOpen());
    }

    @Test
    void closeWithoutHoldsFreesAtOnce() {
        HostArena a = HostArena.shared("plain");
        a.allocate(100);
        a.retain();
        a.release();
        a.close();
        assertEquals(0, MemoryAccounting.hostBytes());
    }
}
