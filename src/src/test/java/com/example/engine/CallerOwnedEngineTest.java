package com.example.engine;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The engine-style example: caller-owned weights and buffers, a stack of layers, no heap allocation once warm. */
class CallerOwnedEngineTest {
    @Test
    void layersInALoopAllocateNothingAndMatchTheEnginesReference() {
        long seed = System.nanoTime();
        System.out.println("engine seed " + seed);
        for (int tokens : new int[] {1, 5, 33}) {
            CallerOwnedEngine.Result r = CallerOwnedEngine.run(4, tokens, 250, 40, seed + tokens);
            System.out.printf("engine T=%d: %d calls, %d heap bytes over %d warm calls, max relative error %.3e, natives from %s%n",
                    tokens, r.calls(), r.heapBytesBestRound(), r.callsPerRound(), r.maxRelativeError(), r.nativeSource());
            assertEquals(0, r.heapBytesBestRound(), "Java heap bytes allocated by " + r.callsPerRound() + " warm calls");
            // CPU, f32 accumulation on the stored weight values (f32 and bf16 alike)
            assertTrue(r.maxRelativeError() <= 1e-5, "relative error " + r.maxRelativeError());
        }
    }
}
