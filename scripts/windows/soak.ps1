<#
.SYNOPSIS
  Soaks usercap under Driver Verifier: runs "usercap attack" for a duration
  and records verifier /query before and after.

.DESCRIPTION
  Run after verifier.ps1 and a reboot, in Windows PowerShell 5.1 or
  PowerShell 7. Writes verifier-before.txt, attack.txt and
  verifier-after.txt into -OutDir. Exits non-zero if the attack suite
  reports a failure. A Verifier violation bug-checks the machine instead
  (0xC4 Driver Verifier, 0x10D WDF_VIOLATION): analyse the dump with
  !analyze -v and !wdfkd.wdflogdump usercap_driver.

  The driver's own record of every refused request is its DbgPrintEx trace
  (component IHVDRIVER, docs/windows.md): capture it with DebugView or a
  kernel debugger during the soak.

  Native tools run with $ErrorActionPreference = 'Continue': with 'Stop',
  Windows PowerShell 5.1 turns each line a native tool writes to stderr,
  once redirected with 2>&1, into a terminating error. Their exit codes
  decide instead.

.PARAMETER FaultInjection
  The machine runs Low Resources Simulation (verifier.ps1 -Faults): pass
  --fault-injection to the attack suite, which then accepts
  STATUS_INSUFFICIENT_RESOURCES for valid requests.
#>
[CmdletBinding()]
param(
    [int] $Seconds = 3600,
    [int] $Threads = 4,
    [string] $Usercap = 'usercap.exe',
    [string] $OutDir = '.\soak',
    [switch] $FaultInjection
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

New-Item -ItemType Directory -Force -Path $OutDir | Out-Null
$before = Join-Path $OutDir 'verifier-before.txt'
$attack = Join-Path $OutDir 'attack.txt'
$after = Join-Path $OutDir 'verifier-after.txt'

# Runs a native command (a script block) with stderr merged into stdout,
# shows and records its lines in $Path as they come, and returns its exit
# code.
function Invoke-Logged([scriptblock] $Command, [string] $Path) {
    $previous = $ErrorActionPreference
    $ErrorActionPreference = 'Continue'
    try {
        & $Command 2>&1 | ForEach-Object { "$_" } | Tee-Object -FilePath $Path | Out-Host
        $code = $LASTEXITCODE
    } finally {
        $ErrorActionPreference = $previous
    }
    return $code
}

Invoke-Logged { verifier.exe /query } $before | Out-Null
if (-not (Select-String -Path $before -Pattern 'usercap_driver.sys' -Quiet)) {
    Write-Warning 'usercap_driver.sys is not in verifier /query: is Driver Verifier on (verifier.ps1, reboot)?'
}

$arguments = @('--transport', 'windows', 'attack', '--duration', "$Seconds", '--threads', "$Threads")
if ($FaultInjection) { $arguments += '--fault-injection' }
Write-Host "> $Usercap $($arguments -join ' ')"
$attackExit = Invoke-Logged { & $Usercap @arguments } $attack

Invoke-Logged { verifier.exe /query } $after | Out-Null
Write-Host "Results in $OutDir. Compare the pool and IRQL counters of verifier-before.txt and verifier-after.txt."
if ($attackExit -ne 0) { throw "usercap attack reported failures (exit $attackExit)" }
