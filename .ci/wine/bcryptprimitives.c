/*
 * usercap's stand-in for bcryptprimitives.dll, for Wine 8.0 only.
 *
 * Rust's std (since 1.78) imports ProcessPrng from bcryptprimitives.dll,
 * which Wine 8.0 does not have: every Windows test binary would die before
 * main with STATUS_DLL_NOT_FOUND (cargo shows "exit status: 53"). This DLL
 * exports ProcessPrng and fills the buffer from the system RNG through
 * BCryptGenRandom, which Wine does have. .ci/run builds it with mingw and
 * puts it in the Wine prefix's system32; it is test infrastructure, never
 * part of usercap.
 */
#include <windows.h>
#include <bcrypt.h>

/* ProcessPrng is documented to always return TRUE; a failure of the
   system RNG here is reported as FALSE, which std turns into a panic. */
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, data, chunk,
                                            BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
