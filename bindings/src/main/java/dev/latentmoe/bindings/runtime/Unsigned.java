package dev.latentmoe.bindings.runtime;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Marks where a binding carries a C unsigned integer ({@code uint32_t}, {@code uint64_t},
 * {@code size_t}, ...) in Java's signed type of the same width: a wrapper's parameter, a wrapper
 * method (its return value) or a struct class's field getter. Unmarked integers are signed in C.
 * Java has no unsigned types, so this is the binding's only record of the C signedness: the header
 * drift test compares it with the header, so that a signedness change there cannot go unnoticed.
 */
@Documented
@Retention(RetentionPolicy.RUNTIME)
@Target({ElementType.PARAMETER, ElementType.METHOD})
public @interface Unsigned {}
