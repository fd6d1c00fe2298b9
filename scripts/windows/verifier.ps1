<#
.SYNOPSIS
  Turns on Driver Verifier (standard checks, WDF verification included) and
  KMDF Verifier's registry options for usercap, or turns them off.

.DESCRIPTION
  Elevated PowerShell. Driver Verifier settings take effect after a reboot.
    verifier /standard /driver usercap_driver.sys
      (special pool, IRQL checking, pool tracking, I/O verification,
       deadlock detection, security and DDI compliance checks, and WDF
       verification, i.e. KMDF Verifier)
  -Faults adds low-resources simulation (random allocation failures) with
  verifier /faults, which exercises every error path of the driver.
  KMDF Verifier options go under
  HKLM\SYSTEM\CurrentControlSet\Services\usercap\Parameters\Wdf.
  -Off resets Driver Verifier and removes the KMDF values.
#>
[CmdletBinding()]
param(
    [switch] $Faults,
    [switch] $Off,
    [switch] $NoReboot
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$Driver = 'usercap_driver.sys'
$WdfKey = 'HKLM:\SYSTEM\CurrentControlSet\Services\usercap\Parameters\Wdf'

function Invoke-Checked([string] $File, [string[]] $Arguments) {
    Write-Host "> $File $($Arguments -join ' ')"
    & $File @Arguments
    # verifier.exe returns 2 when the change needs a reboot.
    if ($LASTEXITCODE -ne 0 -and $LASTEXITCODE -ne 2) { throw "$File exited with $LASTEXITCODE" }
}

$principal = [Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    throw 'Run this script from an elevated PowerShell.'
}

if ($Off) {
    Invoke-Checked 'verifier.exe' @('/reset')
    if (Test-Path $WdfKey) { Remove-Item $WdfKey -Recurse }
} else {
    if (-not (Test-Path 'HKLM:\SYSTEM\CurrentControlSet\Services\usercap')) {
        throw 'The usercap service is not installed yet: run install.ps1 first.'
    }
    Invoke-Checked 'verifier.exe' @('/standard', '/driver', $Driver)
    if ($Faults) {
        Invoke-Checked 'verifier.exe' @('/faults', '/driver', $Driver)
    }
    New-Item -Path $WdfKey -Force | Out-Null
    $values = @{ VerifierOn = 1; VerboseOn = 1; DbgBreakOnError = 1; LogPages = 16; ForceLogsInMiniDump = 1 }
    foreach ($name in $values.Keys) {
        New-ItemProperty -Path $WdfKey -Name $name -PropertyType DWord -Value $values[$name] -Force | Out-Null
    }
    New-ItemProperty -Path $WdfKey -Name TrackHandles -PropertyType MultiString -Value @('WDFREQUEST', 'WDFMEMORY') -Force | Out-Null
    Write-Host "KMDF Verifier values set under $WdfKey"
}

Invoke-Checked 'verifier.exe' @('/querysettings')
Write-Warning 'Driver Verifier changes apply after a reboot. Attach a kernel debugger to see breaks (DbgBreakOnError).'
if (-not $NoReboot) {
    $answer = Read-Host 'Reboot now? [y/N]'
    if ($answer -match '^[yY]') { Restart-Computer }
}
