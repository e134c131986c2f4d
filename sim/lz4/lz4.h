/* sparq's LZ4 block compressor: the two functions of the LZ4 library that Verilator's FST writer
 * (include/fstcpp/fstcpp_writer.cpp) calls, so that SPARQ_WAVES=1 needs no liblz4 from the system or the network.
 * The output is a standard LZ4 block (https://github.com/lz4/lz4/blob/dev/doc/lz4_Block_format.md): any LZ4
 * decoder, GTKWave's and Surfer's included, reads it. */
#ifndef SPARQ_LZ4_H
#define SPARQ_LZ4_H

#ifdef __cplusplus
extern "C" {
#endif

#define LZ4_MAX_INPUT_SIZE 0x7E000000

/* The largest block LZ4_compress_default can write for inputSize bytes (0 when inputSize is out of range). */
int LZ4_compressBound(int inputSize);

/* Compress srcSize bytes of src into dst (dstCapacity bytes); returns the block's size, or 0 when it does not fit
 * or srcSize is out of range. Greedy matching over a 64 KiB window, one hash table of 4-byte sequences. */
int LZ4_compress_default(const char* src, char* dst, int srcSize, int dstCapacity);

#ifdef __cplusplus
}
#endif

#endif
