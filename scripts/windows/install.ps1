<#
.SYNOPSIS
  Installs the test-signed usercap driver package on a Windows test machine.

.DESCRIPTION
  Run in an elevated PowerShell on a machine with test signing on
  (bcdedit /set testsigning on, then reboot). Steps:
    1. trust the package's test certificate (WDRLocalTestCert.cer) in
       LocalMachine\Root and LocalMachine\TrustedPublisher;
    2. add the driver package to the driver store (pnputil /add-driver);
    3. create the root-enumerated devnode Root\UserCap (devgen /add /bus ROOT),
       unless one exists; PnP then installs the driver on it.
  -Uninstall removes the devnode(s) and the driver package instead.

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
$Inf = 'usercap_driver.inf'

function Assert-Admin {
    $principal = [Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
    if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
        throw 'Run this script from an elevated PowerShell.'
    }
}

function Invoke-Checked([string] $File, [string[]] $Arguments) {
    Write-Host "> $File $($Arguments -join ' ')"
    & $File @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$File exited with $LASTEXITCODE" }
}

function Get-UserCapDevices {
    Get-PnpDevice -PresentOnly:$false -ErrorAction SilentlyContinue |
        Where-Object { $_.HardwareID -contains $HardwareId }
}

Assert-Admin

if ($Uninstall) {
    foreach ($device in @(Get-UserCapDevices)) {
        Invoke-Checked 'pnputil.exe' @('/remove-device', $device.InstanceId)
    }
    $published = Get-WindowsDriver -Online | Where-Object { $_.OriginalFileName -like "*\$Inf" }
    foreach ($driver in @($published)) {
        Invoke-Checked 'pnputil.exe' @('/delete-driver', $driver.Driver, '/uninstall', '/force')
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

Invoke-Checked 'pnputil.exe' @('/add-driver', $infPath, '/install')

if (@(Get-UserCapDevices).Count -eq 0) {
    Invoke-Checked $DevGen @('/add', '/bus', 'ROOT', '/hardwareid', $HardwareId)
} else {
    Write-Host "A $HardwareId device already exists; pnputil /install updated its driver."
}

Get-UserCapDevices | Format-Table -AutoSize Status, Class, FriendlyName, InstanceId
Write-Host 'Next: usercap demo   (then usercap attack)'
