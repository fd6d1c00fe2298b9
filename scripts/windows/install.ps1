<#
.SYNOPSIS
  Installs the test-signed usercap driver package on a Windows test machine.

.DESCRIPTION
  Run in an elevated PowerShell (5.1 or 7) on a machine with test signing on
  (bcdedit /set testsigning on, then reboot). Steps:
    1. trust the package's test certificate (WDRLocalTestCert.cer) in
       LocalMachine\Root and LocalMachine\TrustedPublisher;
    2. create the root-enumerated devnode Root\UserCap (devgen /add /bus ROOT),
       unless one exists: usercap supports one device (a second one works
       through its device interface only, without \\.\UserCap);
    3. add the package to the driver store and install it on that device
       (pnputil /add-driver <inf> /install);
    4. check that the device now runs the usercap service.
  The device is created before the package is installed because
  "pnputil /add-driver /install" with no matching device returns 259
  (ERROR_NO_MORE_ITEMS), not 0.
  -Uninstall removes the devnode(s) and the driver package instead.

  pnputil exit codes (learn.microsoft.com, "PnPUtil return values"):
    0    ERROR_SUCCESS
    3010 ERROR_SUCCESS_REBOOT_REQUIRED: done, a reboot completes it
    259  ERROR_NO_MORE_ITEMS: no device matched the driver, or the device
         already has this driver or a better one (checked in step 4)
    1641 ERROR_SUCCESS_REBOOT_INITIATED (only with /reboot, not used here)

.PARAMETER Package
  The package folder: target\<profile>\usercap_driver_package.

.PARAMETER DevGen
  Path to the WDK's devgen.exe (Tools\<version>\x64\devgen.exe).
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)] [string] $Package,
    [string] $DevGen = 'devgen.exe',
    [switch] $Uninstall
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$HardwareId = 'Root\UserCap'
$Service = 'usercap'
$Inf = 'usercap_driver.inf'
$ErrorSuccessRebootRequired = 3010
$ErrorNoMoreItems = 259

function Assert-Admin {
    $principal = [Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
    if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
        throw 'Run this script from an elevated PowerShell.'
    }
}

# Runs a native tool and returns its exit code, which must be one of
# -Success (default: 0 only). A reboot-required code is reported, not hidden.
# The tool's output goes to the host, not into the return value. While it
# runs, $ErrorActionPreference is 'Continue': Windows PowerShell 5.1 turns a
# native tool's stderr lines into error records when its streams are
# redirected, which 'Stop' would make fatal; the exit code decides instead.
function Invoke-Native([string] $File, [string[]] $Arguments, [int[]] $Success = @(0)) {
    Write-Host "> $File $($Arguments -join ' ')"
    $previous = $ErrorActionPreference
    $ErrorActionPreference = 'Continue'
    try {
        & $File @Arguments | Out-Host
    } finally {
        $ErrorActionPreference = $previous
    }
    $code = $LASTEXITCODE
    if ($Success -notcontains $code) {
        throw "$File exited with $code (accepted: $($Success -join ', ')); see %windir%\inf\setupapi.dev.log"
    }
    if ($code -eq $ErrorSuccessRebootRequired) {
        Write-Warning "$File succeeded but needs a reboot to finish (3010)."
    }
    return $code
}

function Get-UserCapDevices {
    Get-PnpDevice -PresentOnly:$false -ErrorAction SilentlyContinue |
        Where-Object { $_.HardwareID -contains $HardwareId }
}

Assert-Admin

if ($Uninstall) {
    foreach ($device in @(Get-UserCapDevices)) {
        Invoke-Native 'pnputil.exe' @('/remove-device', $device.InstanceId) -Success 0, 3010 | Out-Null
    }
    $published = Get-WindowsDriver -Online | Where-Object { $_.OriginalFileName -like "*\$Inf" }
    foreach ($driver in @($published)) {
        Invoke-Native 'pnputil.exe' @('/delete-driver', $driver.Driver, '/uninstall', '/force') -Success 0, 3010 | Out-Null
    }
    Write-Host 'usercap removed.'
    return
}

$Package = (Resolve-Path $Package).Path
$cert = Join-Path $Package 'WDRLocalTestCert.cer'
$infPath = Join-Path $Package $Inf
foreach ($file in @($cert, $infPath, (Join-Path $Package 'usercap_driver.sys'), (Join-Path $Package 'usercap_driver.cat'))) {
    if (-not (Test-Path $file)) { throw "missing $file (build with: cargo make, or cargo wdk build --sign-mode test)" }
}

$testSigning = (bcdedit /enum '{current}') -match 'testsigning\s+Yes'
if (-not $testSigning) {
    Write-Warning 'Test signing is off: run "bcdedit /set testsigning on" and reboot, or the driver will not load.'
}

foreach ($store in @('Cert:\LocalMachine\Root', 'Cert:\LocalMachine\TrustedPublisher')) {
    Import-Certificate -FilePath $cert -CertStoreLocation $store | Out-Null
    Write-Host "Trusted WDRLocalTestCert in $store"
}

# 1. The device first, so that /install below has a device to install on.
if (@(Get-UserCapDevices).Count -eq 0) {
    Invoke-Native $DevGen @('/add', '/bus', 'ROOT', '/hardwareid', $HardwareId) | Out-Null
} else {
    Write-Host "A $HardwareId device already exists; installing the package on it."
}

# 2. Stage and install. 259 is accepted here: PnP may already have installed
# this package on the new device, or a better driver is installed; step 3
# says which.
$code = Invoke-Native 'pnputil.exe' @('/add-driver', $infPath, '/install') -Success 0, $ErrorSuccessRebootRequired, $ErrorNoMoreItems
if ($code -eq $ErrorNoMoreItems) {
    Write-Warning 'pnputil installed the package on no device (259): the device already has this driver or a better one.'
}

# 3. The result, whatever pnputil said.
$devices = @(Get-UserCapDevices)
$devices | Format-Table -AutoSize Status, Class, FriendlyName, InstanceId
foreach ($device in $devices) {
    $property = Get-PnpDeviceProperty -InstanceId $device.InstanceId -KeyName 'DEVPKEY_Device_Service' -ErrorAction SilentlyContinue
    $service = if ($property) { $property.Data } else { $null }
    if ($service -ne $Service) {
        throw "$($device.InstanceId) runs service '$service', not '$Service': see %windir%\inf\setupapi.dev.log"
    }
    if ($device.Status -ne 'OK') {
        Write-Warning "$($device.InstanceId) is $($device.Status): a reboot (3010 above), a load failure (Event Viewer, System log) or a KMDF version mismatch (docs/windows.md)."
    }
}
Write-Host 'Next: usercap demo   (then usercap attack)'
