<#
.SYNOPSIS
  Soaks usercap under Driver Verifier: runs "usercap attack" for a duration
  and records verifier /query before and after.

.DESCRIPTION
  Run after verifier.ps1 and a reboot. Writes verifier-before.txt,
  attack.txt and verifier-after.txt into -OutDir. Exits non-zero if the
  attack suite reports a failure. A Verifier violation bug-checks the
  machine instead (0xC4 Driver Verifier, 0x10D WDF_VIOLATION): analyse the
  dump with !analyze -v and !wdfkd.wdflogdump usercap_driver.
#>
[CmdletBinding()]
param(
    [int] $Seconds = 3600,
    [int] $Threads = 4,
    [string] $Usercap = 'usercap.exe',
    [string] $OutDir = '.\soak'
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

New-Item -ItemType Directory -Force -Path $OutDir | Out-Null

& verifier.exe /query | Out-File (Join-Path $OutDir 'verifier-before.txt') -Encoding utf8
if (-not (Select-String -Path (Join-Path $OutDir 'verifier-before.txt') -Pattern 'usercap_driver.sys' -Quiet)) {
    Write-Warning 'usercap_driver.sys is not in verifier /query: is Driver Verifier on (verifier.ps1, reboot)?'
}

Write-Host "> $Usercap --transport windows attack --duration $Seconds --threads $Threads"
& $Usercap --transport windows attack --duration $Seconds --threads $Threads 2>&1 |
    Tee-Object -FilePath (Join-Path $OutDir 'attack.txt')
$attackExit = $LASTEXITCODE

& verifier.exe /query | Out-File (Join-Path $OutDir 'verifier-after.txt') -Encoding utf8
Write-Host "Results in $OutDir. Compare the pool and IRQL counters of verifier-before.txt and verifier-after.txt."
if ($attackExit -ne 0) { throw "usercap attack reported failures (exit $attackExit)" }
