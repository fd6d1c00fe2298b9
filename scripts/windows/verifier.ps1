<#
.SYNOPSIS
  Turns on Driver Verifier (standard checks, optionally low resources
  simulation) and KMDF Verifier's registry options for usercap, or turns
  them off.

.DESCRIPTION
  Elevated PowerShell (5.1 or 7). Driver Verifier settings take effect after
  a reboot. Everything is configured in ONE command, because each
  "verifier /standard|/flags ... /driver X" replaces the previous settings:
    verifier /flags 0x209BB /driver usercap_driver.sys      (default)
    verifier /flags 0x209BF /driver usercap_driver.sys      (-Faults)
  0x209BB is what /standard means ("equivalent to /flags 0x209BB", verifier
  /?): special pool, IRQL checking, pool tracking, I/O verification,
  deadlock detection, DMA checking, security checks, miscellaneous checks,
  DDI compliance checking. -Faults adds 0x4, randomized low resources
  simulation (random pool allocation failures), which exercises every error
  path of the driver; run "usercap attack --fault-injection" under it.
  The result is read back with "verifier /querysettings" and the script
  fails if the flags or the driver are not there.

  KMDF Verifier options go under
  HKLM\SYSTEM\CurrentControlSet\Services\usercap\Parameters\Wdf and are read
  when the driver loads. DbgBreakOnError is set only with -DebuggerAttached:
  without a kernel debugger, the break it asks for on a KMDF Verifier error
  is itself an unhandled breakpoint, a 0x7E/0x1E bug check, not the 0x10D
  WDF_VIOLATION that names the error.

  -Off resets Driver Verifier and removes the KMDF values.

.PARAMETER Faults
  Add randomized low resources simulation (flag 0x4).

.PARAMETER DebuggerAttached
  A kernel debugger will be attached when the driver loads: also set
  DbgBreakOnError = 1, so KMDF Verifier breaks into it on an error.

.PARAMETER Off
  verifier /reset, and remove the KMDF Verifier values.

.PARAMETER NoReboot
  Do not offer to reboot.
#>
[CmdletBinding()]
param(
    [switch] $Faults,
    [switch] $DebuggerAttached,
    [switch] $Off,
    [switch] $NoReboot
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$Driver = 'usercap_driver.sys'
$WdfKey = 'HKLM:\SYSTEM\CurrentControlSet\Services\usercap\Parameters\Wdf'
$StandardFlags = 0x209BB
$LowResourcesSimulation = 0x4

# Runs verifier.exe and returns its output lines. Its exit code is not
# trusted to mean success or failure (it is not documented); the settings
# are checked with /querysettings instead. $ErrorActionPreference is
# 'Continue' while it runs, so that Windows PowerShell 5.1 does not turn a
# stderr line into a terminating error.
function Invoke-Verifier([string[]] $Arguments) {
    Write-Host "> verifier.exe $($Arguments -join ' ')"
    $previous = $ErrorActionPreference
    $ErrorActionPreference = 'Continue'
    try {
        $output = @(& verifier.exe @Arguments 2>&1 | ForEach-Object { "$_" })
    } finally {
        $ErrorActionPreference = $previous
    }
    Write-Host "  (exit code $LASTEXITCODE)"
    $output | Out-Host
    return $output
}

$principal = [Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    throw 'Run this script from an elevated PowerShell.'
}

if ($Off) {
    Invoke-Verifier @('/reset') | Out-Null
    if (Test-Path $WdfKey) { Remove-Item $WdfKey -Recurse }
    $settings = Invoke-Verifier @('/querysettings')
    if ($settings -match [regex]::Escape($Driver)) {
        throw "verifier /querysettings still lists $Driver after /reset"
    }
} else {
    if (-not (Test-Path 'HKLM:\SYSTEM\CurrentControlSet\Services\usercap')) {
        throw 'The usercap service is not installed yet: run install.ps1 first.'
    }
    $flags = $StandardFlags
    if ($Faults) { $flags = $flags -bor $LowResourcesSimulation }
    $hex = '0x{0:X}' -f $flags
    Invoke-Verifier @('/flags', $hex, '/driver', $Driver) | Out-Null

    $settings = Invoke-Verifier @('/querysettings')
    $shown = [regex]::Match(($settings -join "`n"), '0x[0-9A-Fa-f]{8}')
    if (-not $shown.Success) { throw 'verifier /querysettings printed no flags value' }
    $applied = [Convert]::ToUInt32($shown.Value.Substring(2), 16)
    if (($applied -band $flags) -ne $flags) {
        throw ("verifier /querysettings shows flags 0x{0:X}, which lack 0x{1:X}" -f $applied, $flags)
    }
    if (-not ($settings -match [regex]::Escape($Driver))) {
        throw "verifier /querysettings does not list $Driver"
    }
    Write-Host ("Driver Verifier: flags 0x{0:X} for {1} after the next boot" -f $applied, $Driver)

    New-Item -Path $WdfKey -Force | Out-Null
    $values = @{ VerifierOn = 1; VerboseOn = 1; LogPages = 16; ForceLogsInMiniDump = 1 }
    foreach ($name in $values.Keys) {
        New-ItemProperty -Path $WdfKey -Name $name -PropertyType DWord -Value $values[$name] -Force | Out-Null
    }
    if ($DebuggerAttached) {
        New-ItemProperty -Path $WdfKey -Name DbgBreakOnError -PropertyType DWord -Value 1 -Force | Out-Null
        Write-Host 'DbgBreakOnError = 1: KMDF Verifier errors break into the kernel debugger.'
    } elseif (Get-ItemProperty -Path $WdfKey -Name DbgBreakOnError -ErrorAction SilentlyContinue) {
        Remove-ItemProperty -Path $WdfKey -Name DbgBreakOnError
    }
    New-ItemProperty -Path $WdfKey -Name TrackHandles -PropertyType MultiString -Value @('WDFREQUEST', 'WDFMEMORY') -Force | Out-Null
    Write-Host "KMDF Verifier values set under $WdfKey"
}

Write-Warning 'Driver Verifier changes apply after a reboot; KMDF Verifier values when the driver next loads.'
if (-not $NoReboot) {
    $answer = Read-Host 'Reboot now? [y/N]'
    if ($answer -match '^[yY]') { Restart-Computer }
}
